"""Log impressions to Kafka: what a subscriber showed, keyed by user, ``acks=all``.

The logger is the producer side of the feedback loop: a service that serves
``Subscriber.recommend`` logs each list it shows, and the learner joins later clicks to it
(:mod:`consumers.impressions`). Records are keyed by ``user_id`` so a user's impressions
and events can share a partitioning, and sent through the project's reliable producer
(idempotent, ``acks=all``). Ids are random unless given.

    with ImpressionLogger(bootstrap, "impressions") as log:
        recs = subscriber.recommend("u1", k=10)
        log.log("u1", [item for item, _ in recs], model="reco",
                version=subscriber.current[0].number)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

import msgspec

from stream.impression import Impression, decode_impression, encode_impression
from stream.producer import reliable_producer
from stream.schema import Rejected

__all__ = ["ImpressionLogger"]


class ImpressionLogger:
    """Send :class:`~stream.impression.Impression` records to ``topic``.

    ``clock`` gives the ``ts`` of impressions logged without one (default: wall time).
    With a ``pseudonymizer`` (:mod:`stream.pseudonym`, the producers' key) each impression's
    ``user_id`` (and so its key) is replaced by its pseudonym before it leaves the process,
    as :class:`~stream.producer.EventProducer` does for events: pass the raw id.
    """

    def __init__(self, bootstrap_servers: str, topic: str = "impressions", *,
                 client_id: str = "lifelong-impressions",
                 clock: Callable[[], float] = time.time,
                 pseudonymizer: Callable[[str], str] | None = None,
                 **producer_config: object) -> None:
        self.topic = topic
        self.clock = clock
        self.pseudonymizer = pseudonymizer
        self._producer = reliable_producer(bootstrap_servers, client_id, **producer_config)
        self.sent = 0

    def log(self, user: str, items: Sequence[str], *, ts: float | None = None,
            impression_id: str | None = None, request_id: str | None = None,
            model: str | None = None, version: int | None = None) -> Impression:
        """Queue one impression (non-blocking) and return it as sent; :meth:`flush` waits."""
        impression = Impression(impression_id or uuid.uuid4().hex, user, tuple(items),
                                self.clock() if ts is None else float(ts), request_id,
                                model, version)
        return self.send(impression)

    def send(self, impression: Impression) -> Impression:
        """Queue an already built impression (returned as sent); invalid raises ``ValueError``."""
        if self.pseudonymizer is not None:
            impression = msgspec.structs.replace(
                impression, user_id=self.pseudonymizer(impression.user_id))
        raw = encode_impression(impression)
        checked = decode_impression(raw)
        if isinstance(checked, Rejected):
            raise ValueError(f"impression {impression.impression_id!r}: {checked.reason}")
        self._producer.send(self.topic, value=raw, key=impression.user_id.encode("utf-8"))
        self.sent += 1
        return impression

    def flush(self, timeout: float | None = None) -> None:
        """Block until every queued impression is acknowledged by the broker."""
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        """Flush and close."""
        self._producer.flush()
        self._producer.close()

    def __enter__(self) -> ImpressionLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
