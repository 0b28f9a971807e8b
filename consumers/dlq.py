"""The dead-letter queue on Kafka: refused records with the reason in a header."""

from __future__ import annotations

import logging

from stream.producer import reliable_producer
from stream.source import Record

__all__ = ["KafkaDeadLetters"]

log = logging.getLogger(__name__)


class KafkaDeadLetters:
    """Send refused records to ``topic`` (default ``events.dlq``), bytes unchanged.

    Headers: ``reason`` (UTF-8 text), ``source.topic``, ``source.partition``,
    ``source.offset``. :meth:`flush` blocks until the broker acknowledged them all
    (``acks=all``), so the worker commits source offsets only after that.
    """

    def __init__(self, bootstrap_servers: str, topic: str = "events.dlq",
                 *, client_id: str = "lifelong-dlq"):
        self.topic = topic
        self._producer = reliable_producer(bootstrap_servers, client_id, linger_ms=5)
        self._pending = 0

    def put(self, record: Record, reason: str) -> None:
        """Queue ``record`` for the dead-letter topic."""
        headers = [
            ("reason", reason.encode("utf-8")),
            ("source.topic", record.topic.encode("utf-8")),
            ("source.partition", str(record.partition).encode()),
            ("source.offset", str(record.offset).encode()),
        ]
        self._producer.send(self.topic, value=record.value, key=record.key, headers=headers)
        self._pending += 1

    def flush(self) -> None:
        """Wait until every queued record is acknowledged."""
        if self._pending:
            self._producer.flush()
            log.debug("flushed %d dead letters to %s", self._pending, self.topic)
            self._pending = 0

    def close(self) -> None:
        """Flush and close the producer."""
        self.flush()
        self._producer.close()
