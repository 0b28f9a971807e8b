"""The erasure topic for sharded learners: every process reads all of it, outside the group.

A sharded learner's consumer group shares the events topic's partitions; the erasure
topic (one partition, docs/privacy.md) cannot be shared that way: a request must reach the
process that holds the user's shard, wherever the group put it, and a shard moved to
another process must not miss a request nor apply one twice. So each process reads the
whole erasure topic with its own group-less consumer (:class:`ErasureFeed`, kafka-python
``assign`` + ``seek``: nothing is committed to Kafka) and
:class:`~consumers.shards.ShardedRunner` hands each request to every shard it holds whose
own erasure position is at or below the request's offset:

- each shard's versions record the erasure topic's offset next to its partition's offsets
  (the worker places the request like any record), so a shard restored anywhere resumes
  exactly after the last request its version covers; the feed rewinds to the lowest
  position of the shards it holds (a shard opened behind the others re-reads the requests
  it has not seen; the others skip them by their positions);
- a shard that held the user forgets it and publishes at once (the erasure version); a
  shard that did not publishes nothing for it (its next version carries the position).

>>> feed = ErasureFeed.__new__(ErasureFeed)  # the position logic, without a broker
>>> feed.topic, feed._next, feed._seeks = "erasures", {0: 7}, []
>>> feed._seek = lambda partition, offset: feed._seeks.append((partition, offset))
>>> feed.rewind({("erasures", 0): 3, ("events", 0): 1}), feed._next, feed._seeks
(True, {0: 3}, [(0, 3)])
>>> feed.rewind({("erasures", 0): 5}), feed._seeks
(False, [(0, 3)])
>>> feed.rewind({}), feed._seeks  # a shard with no version: from the beginning
(True, [(0, 3), (0, 0)])
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from stream.source import Record

__all__ = ["ErasureFeed"]

log = logging.getLogger(__name__)


class ErasureFeed:
    """Read every partition of ``topic`` from the offsets :meth:`rewind` asks for.

    ``start`` (``{partition: next offset}``, default 0) is where reading begins.
    """

    def __init__(self, bootstrap_servers: str, topic: str, *,
                 start: Mapping[int, int] | None = None, client_id: str = "lifelong-erasures",
                 max_records: int = 500, **consumer_config: Any):
        self.topic = topic
        self.max_records = max_records
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None,
                                       client_id=client_id, enable_auto_commit=False,
                                       **consumer_config)
        found = self._consumer.partitions_for_topic(topic) or {0}
        self._consumer.assign([TopicPartition(topic, p) for p in sorted(found)])
        self._next: dict[int, int] = {p: int((start or {}).get(p, 0)) for p in sorted(found)}
        for partition, offset in self._next.items():
            self._seek(partition, offset)

    def _seek(self, partition: int, offset: int) -> None:
        self._consumer.seek(TopicPartition(self.topic, partition), offset)

    def rewind(self, positions: Mapping[tuple[str, int], int]) -> bool:
        """Read again from a shard's ``positions`` (0 where absent) lying behind the feed's."""
        moved = False
        for partition, at in list(self._next.items()):
            offset = positions.get((self.topic, partition), 0)
            if offset >= at:
                continue
            self._next[partition] = offset
            self._seek(partition, offset)
            moved = True
        return moved

    def poll(self, timeout: float = 0.0) -> list[Record]:
        """The next requests (at most ``max_records``), waiting up to ``timeout`` seconds."""
        batches = self._consumer.poll(timeout_ms=int(max(0.0, timeout) * 1000),
                                      max_records=self.max_records)
        records = [Record(m.value, m.topic, m.partition, m.offset, None, m.key)
                   for msgs in batches.values() for m in msgs]
        for record in records:
            self._next[record.partition] = record.offset + 1
        return records

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()
