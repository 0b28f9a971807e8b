"""A Kafka topic as a :class:`~stream.source.Source`: a consumer in a consumer group.

Offsets are committed by hand, after the work (``enable_auto_commit=False``); ``poll``
waits at most one second so shutdown is prompt. Consumer lag per partition is reported to
an optional callback after each poll.

Broker outages are ridden out: a poll that fails with a retriable Kafka error returns no
records (logged, with a short back-off), and a commit is retried with exponential back-off
(:data:`COMMIT_RETRY_SECONDS` at most) before its error is raised to the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from stream.source import Record

__all__ = ["COMMIT_RETRY_SECONDS", "KafkaSource", "retriable"]

log = logging.getLogger(__name__)

COMMIT_RETRY_SECONDS = 10.0


def retriable(exc: BaseException) -> bool:
    """A Kafka error worth retrying: a timeout, no broker, a coordinator moving...

    >>> from kafka.errors import CommitFailedError, KafkaConnectionError, KafkaTimeoutError
    >>> [retriable(e()) for e in (KafkaTimeoutError, KafkaConnectionError, CommitFailedError)]
    [True, True, False]
    """
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError, RetriableError

    if isinstance(exc, KafkaTimeoutError | KafkaConnectionError | RetriableError):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))

LagCallback = Callable[[str, int, int], None]
PartitionsCallback = Callable[[list[tuple[str, int]]], None]


class KafkaSource:
    """Read ``topics`` as a member of ``group_id``.

    Resumes from the group's committed offsets, or from ``auto_offset_reset`` when the
    group has none. ``start_offsets`` (``{(topic, partition): next offset}``, e.g. the
    offsets a restored model snapshot covers) win over both. They then follow the records
    handed out, so whenever a partition is (re)assigned the consumer seeks to where the
    in-memory model is: a rebalance neither skips events nor feeds one twice.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        group_id: str,
        *,
        client_id: str = "lifelong-learner",
        max_records: int = 500,
        auto_offset_reset: str = "earliest",
        on_lag: LagCallback | None = None,
        start_offsets: Mapping[tuple[str, int], int] | None = None,
        commit_retry_seconds: float = COMMIT_RETRY_SECONDS,
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
        **consumer_config: object,
    ):
        self.topics = tuple(topics)
        self.group_id = group_id
        self.max_records = max_records
        self.start_offsets = dict(start_offsets or {})
        self.assigned = False  # no partitions yet: the group is still (re)balancing
        self.commit_retry_seconds = commit_retry_seconds
        self._poll_errors = 0
        self._on_lag = on_lag
        # sharded learners (consumers.shards): checkpoint on revoke, restore before the seek
        self.on_assign = on_assign
        self.on_revoke = on_revoke
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            max_poll_records=max_records,
            **consumer_config,
        )
        self._consumer.subscribe(self.topics, listener=_SeekOnAssign(self))

    def _seek_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.assigned = True
        assigned = list(assigned)
        if self.on_assign is not None:  # may set start_offsets (a restored shard's)
            self.on_assign([(tp.topic, tp.partition) for tp in assigned])
        for tp in assigned:
            offset = self.start_offsets.get((tp.topic, tp.partition))
            if offset is not None:
                self._consumer.seek(tp, offset)
                log.info("%s[%d]: resuming at offset %d (the restored snapshot's)", tp.topic,
                         tp.partition, offset)

    def poll(self, timeout: float = 1.0) -> list[Record]:
        """Fetch the next records (at most ``max_records``), waiting up to ``timeout`` s."""
        timeout_ms = int(max(0.0, min(timeout, 1.0)) * 1000)
        try:
            batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=self.max_records)
        except KafkaError as exc:
            if not retriable(exc):
                raise
            self._poll_errors += 1
            log.warning("poll failed (%s: %s), attempt %d; the broker may be restarting",
                        type(exc).__name__, exc, self._poll_errors)
            time.sleep(min(1.0, 0.1 * self._poll_errors))
            return []
        self._poll_errors = 0
        records: list[Record] = []
        for tp, msgs in batches.items():
            if not msgs:
                continue
            topic, partition = tp.topic, tp.partition  # a record's own are its batch's
            records += [
                Record(m.value, topic, partition, m.offset,
                       ts / 1000.0 if (ts := m.timestamp) is not None and ts >= 0 else None,
                       m.key)
                for m in msgs
            ]
            self.start_offsets[(topic, partition)] = msgs[-1].offset + 1
        if self._on_lag is not None:
            self._report_lag()
        return records

    def _report_lag(self) -> None:
        assert self._on_lag is not None
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = self._consumer.position(tp)
            except Exception:
                continue
            self._on_lag(tp.topic, tp.partition, max(0, high - position))

    def commit(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Commit ``positions`` (next offsets to read) for the partitions still assigned.

        Retriable errors (a broker restarting) are retried with exponential back-off for up
        to ``commit_retry_seconds``; then, or on a rebalance (``CommitFailedError``), the
        error is raised.
        """
        assigned = self._consumer.assignment()
        offsets = {
            TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
            for (t, p), o in positions.items()
            if TopicPartition(t, p) in assigned
        }
        if not offsets:
            return
        for attempt in Retrying(
            retry=retry_if_exception(retriable), reraise=True,
            stop=stop_after_delay(self.commit_retry_seconds),
            wait=wait_exponential(multiplier=0.25, max=4.0),
            before_sleep=before_sleep_log(log, logging.WARNING),
        ):
            with attempt:
                self._consumer.commit(offsets, timeout_ms=5000)

    def partitions_for(self, topic: str) -> int | None:
        """How many partitions ``topic`` has (``None`` if the broker does not know it)."""
        found = self._consumer.partitions_for_topic(topic)
        return None if found is None else len(found)

    def pause(self, parts: Iterable[tuple[str, int]]) -> None:
        """Stop fetching ``parts`` (still assigned) until :meth:`resume_at`."""
        self._consumer.pause(*(TopicPartition(t, p) for t, p in parts))

    def resume_at(self, topic: str, partition: int, offset: int) -> None:
        """Seek a paused partition to ``offset`` and fetch it again."""
        tp = TopicPartition(topic, partition)
        self.start_offsets[(topic, partition)] = offset
        self._consumer.seek(tp, offset)
        self._consumer.resume(tp)

    @property
    def exhausted(self) -> bool:
        """A topic never ends."""
        return False

    def close(self) -> None:
        """Leave the group and close the connections."""
        self._consumer.close()


class _SeekOnAssign(ConsumerRebalanceListener):
    """Seek newly assigned partitions to the source's resume points."""

    def __init__(self, source: KafkaSource):
        self.source = source

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Positions are committed with each published snapshot; shards checkpoint here."""
        if self.source.on_revoke is not None:
            self.source.on_revoke([(tp.topic, tp.partition) for tp in revoked])

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Seek to the resume points."""
        self.source._seek_assigned(assigned)
