"""The dead-letter queue on Kafka: refused records with the reason in a header.

The same class writes the quarantine topic (valid events a data-quality gate refused).
"""

from __future__ import annotations

import logging
from typing import Any

from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from consumers.kafka_source import retriable
from stream.producer import reliable_producer
from stream.source import Record

__all__ = ["MAX_RECORD_BYTES", "DeadLetterError", "KafkaDeadLetters", "fit_record"]

log = logging.getLogger(__name__)

# What the broker takes by default (message.max.bytes 1048588, the producer's
# max.request.size 1048576), less room for the record batch framing.
MAX_RECORD_BYTES = 1_000_000
_FRAMING = 512


class DeadLetterError(RuntimeError):
    """Dead letters the broker did not acknowledge even after a retry (they stay queued)."""


def fit_record(record: Record, headers: list[tuple[str, bytes]],
               max_bytes: int = MAX_RECORD_BYTES) -> tuple[bytes | None, bytes | None,
                                                           list[tuple[str, bytes]]]:
    """The value, key and headers to send so the dead letter fits in ``max_bytes``.

    A value (or key) too big is cut, and headers record what was cut: ``dlq.truncated``,
    ``source.size`` (the original value size) and ``source.key.size``. A tombstone (a
    ``None`` value) stays a ``None`` value, with ``source.tombstone: true``.

    >>> r = Record(b"x" * 100, "events", 2, 41, key=b"u1")
    >>> value, key, headers = fit_record(r, [("reason", b"too_large")], max_bytes=600)
    >>> len(value) < 100, key, dict(headers)["source.size"], dict(headers)["dlq.truncated"]
    (True, b'u1', b'100', b'true')
    >>> fit_record(Record(None, "events", 0, 1), [])[2]
    [('source.tombstone', b'true')]
    """
    value, key = record.value, record.key
    headers = list(headers)
    if value is None:
        return None, key, [*headers, ("source.tombstone", b"true")]
    if key is not None and len(key) > 1024:
        headers.append(("source.key.size", str(len(key)).encode()))
        key = key[:1024]
    room = max_bytes - _FRAMING - (len(key) if key else 0) - sum(
        len(k) + len(v) + 8 for k, v in headers) - 64  # the headers added below
    if len(value) > room:
        headers += [("dlq.truncated", b"true"), ("source.size", str(len(value)).encode())]
        value = value[: max(0, room)]
    return value, key, headers


class KafkaDeadLetters:
    """Send refused records to ``topic`` (default ``events.dlq``), bytes unchanged.

    Headers: ``reason`` (UTF-8 text), ``source.topic``, ``source.partition``,
    ``source.offset``; a record too big for the topic is cut to fit, with ``dlq.truncated``
    and ``source.size`` (see :func:`fit_record`); a tombstone keeps its ``None`` value.
    :meth:`flush` blocks until the broker acknowledged every one (``acks=all``) and raises
    :class:`DeadLetterError` (keeping the failed ones queued) if it did not, so the worker
    covers a record in a version only once its dead letter is durable.
    """

    def __init__(self, bootstrap_servers: str, topic: str = "events.dlq",
                 *, client_id: str = "lifelong-dlq", max_record_bytes: int = MAX_RECORD_BYTES,
                 retry_seconds: float = 300.0, **producer_config: Any):
        self.topic = topic
        self.max_record_bytes = max_record_bytes
        self.retry_seconds = retry_seconds
        self._producer = reliable_producer(bootstrap_servers, client_id, linger_ms=5,
                                           **{"max_block_ms": 10_000, **producer_config})
        self._pending: list[tuple[Any, Record, str]] = []

    def put(self, record: Record, reason: str) -> None:
        """Queue ``record`` for the dead-letter topic."""
        self._pending.append((self._send(record, reason), record, reason))

    def _send(self, record: Record, reason: str) -> Any:
        headers = [
            ("reason", reason.encode("utf-8", "replace")[:4096]),
            ("source.topic", record.topic.encode("utf-8")),
            ("source.partition", str(record.partition).encode()),
            ("source.offset", str(record.offset).encode()),
        ]
        value, key, headers = fit_record(record, headers, self.max_record_bytes)
        for attempt in Retrying(  # a broker outage blocks here until it is back
            retry=retry_if_exception(retriable), reraise=True,
            stop=stop_after_delay(self.retry_seconds),
            wait=wait_exponential(multiplier=0.5, max=5.0),
            before_sleep=before_sleep_log(log, logging.WARNING),
        ):
            with attempt:
                return self._producer.send(self.topic, value=value, key=key, headers=headers)
        raise AssertionError("unreachable")  # pragma: no cover

    def flush(self, timeout: float | None = 10.0) -> None:
        """Wait until every queued record is acknowledged; resend the failed ones once.

        A flush that times out (``KafkaTimeoutError``) keeps everything queued; the worker
        retries at its next publish.
        """
        if not self._pending:
            return
        for attempt in (1, 2):
            self._producer.flush(timeout=timeout)
            failed = [(r, why) for future, r, why in self._pending
                      if future.is_done and future.failed()]
            if not failed:
                log.debug("flushed %d dead letters to %s", len(self._pending), self.topic)
                self._pending = []
                return
            if attempt == 1:
                log.warning("%d dead letter(s) to %s not acknowledged; resending", len(failed),
                            self.topic)
            self._pending = [(self._send(r, why), r, why) for r, why in failed]
        first = next((f for f, _, _ in self._pending if f.is_done and f.failed()), None)
        cause = first.exception if first is not None else "timed out"
        raise DeadLetterError(f"{len(self._pending)} record(s) for topic {self.topic!r} not "
                              f"acknowledged: {cause}")

    def close(self) -> None:
        """Flush and close the producer."""
        try:
            self.flush()
        finally:
            self._producer.close()
