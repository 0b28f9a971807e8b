"""The producer SDK: events into Kafka, keyed by ``user_id``, ``acks=all``, idempotent.

Keying by user keeps each user's events in order on one partition, which is what a
per-user learner needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaProducer

from stream.pseudonym import Pseudonymizer
from stream.schema import Event, decode, encode

__all__ = ["EventProducer", "reliable_producer"]

log = logging.getLogger(__name__)


def reliable_producer(bootstrap_servers: str, client_id: str, *, linger_ms: Any = 10,
                      **config: object) -> KafkaProducer:
    """A ``KafkaProducer`` that loses nothing it acknowledged: ``acks=all``, idempotent."""
    return KafkaProducer(bootstrap_servers=bootstrap_servers, client_id=client_id, acks="all",
                         enable_idempotence=True, linger_ms=linger_ms, **config)


class EventProducer:
    """Send events (or raw records) to ``topic``.

    ``rate`` (events per second) paces :meth:`send_all`; ``None`` sends as fast as the
    broker takes them. With a ``pseudonymizer`` (:mod:`stream.pseudonym`) every event's
    ``user_id`` (and so its key) is replaced by its pseudonym before it leaves the process;
    valid raw records given to :meth:`send_all` are decoded and re-encoded for that, while
    :meth:`send_raw` always sends its bytes unchanged.
    """

    def __init__(self, bootstrap_servers: str, topic: str = "events", *,
                 client_id: str = "lifelong-producer",
                 pseudonymizer: Pseudonymizer | None = None, **producer_config: object):
        self.topic = topic
        self.pseudonymizer = pseudonymizer
        self._producer = reliable_producer(bootstrap_servers, client_id, **producer_config)
        self.sent = 0

    def send(self, event: Event) -> None:
        """Queue one event (non-blocking); :meth:`flush` waits for acknowledgements."""
        if self.pseudonymizer is not None:
            event = self.pseudonymizer.apply(event)
        self._producer.send(self.topic, value=encode(event), key=event.user_id.encode("utf-8"))
        self.sent += 1

    def send_raw(self, value: bytes, key: bytes | None = None) -> None:
        """Queue raw bytes as they are (used to replay files and to test the DLQ path)."""
        self._producer.send(self.topic, value=value, key=key)
        self.sent += 1

    def send_all(
        self,
        records: Iterable[Event | bytes],
        *,
        rate: float | None = None,
        limit: int | None = None,
        on_progress: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> int:
        """Send ``records`` (at most ``limit``) paced to ``rate`` per second, then flush.

        Raw records are sent unchanged, keyed by their ``user_id`` when they are valid
        events (invalid ones are sent too, unkeyed: the learner routes them to the DLQ).
        Returns how many were sent.
        """
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0 events per second, got {rate}")
        start, n = clock(), 0
        for rec in records:
            if limit is not None and n >= limit:
                break
            if not isinstance(rec, Event) and self.pseudonymizer is not None:
                decoded = decode(rec)
                rec = decoded if isinstance(decoded, Event) else rec
            if isinstance(rec, Event):
                self.send(rec)
            else:
                self.send_raw(rec, key=_user_key(rec))
            n += 1
            if rate is not None:
                ahead = n / rate - (clock() - start)
                if ahead > 0:
                    sleep(ahead)
            if on_progress is not None and n % 500 == 0:
                on_progress(n)
        self.flush()
        if on_progress is not None:
            on_progress(n)
        return n

    def flush(self, timeout: float | None = None) -> None:
        """Block until every queued record is acknowledged by the broker."""
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        """Flush and close."""
        self._producer.flush()
        self._producer.close()

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _user_key(raw: bytes) -> bytes | None:
    event = decode(raw)
    return event.user_id.encode("utf-8") if isinstance(event, Event) else None
