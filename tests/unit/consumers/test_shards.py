"""Shards move between runners through the store: nothing lost, nothing learned twice.

Two runners ("processes") share a 4-partition log held in memory. Rebalances are eager, as
kafka-python's: every member's partitions are revoked, then the new assignment is given.
A "crash" drops a runner without a revoke. Each shard must end as a learner that saw its
partition once, in order: equal (predictions, counts) to one learner per partition fed
without interruption.
"""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.erasure import encode_request
from consumers.erasure_feed import ErasureFeed
from consumers.publisher import RegistryPublisher
from consumers.shards import Shard, ShardedRunner, load_shard
from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from model_store.registry import Registry
from model_store.router import partition_for, shard_name
from model_store.signing import Signer
from stream.schema import Event, decode, encode
from stream.source import ListDeadLetters, Record

TOPIC, PARTS = "events", 4
ERASURES = "erasures"


class Log:
    """A partitioned topic in memory, keyed like Kafka's producer."""

    def __init__(self, events: list[Event]):
        self.partitions: dict[int, list[bytes]] = {p: [] for p in range(PARTS)}
        for event in events:
            self.partitions[partition_for(event.user_id, PARTS)].append(encode(event))


class Member:
    """One group member's consumer: fetches from its assigned partitions' positions."""

    def __init__(self, log: Log, batch: int = 7):
        self.log, self.batch = log, batch
        self.on_assign = self.on_revoke = None
        self.assigned, self.exhausted = False, False
        self.start_offsets: dict[tuple[str, int], int] = {}
        self.position: dict[int, int] = {}
        self.paused: set[int] = set()
        self.committed: dict[tuple[str, int], int] = {}

    def give(self, parts: list[int]) -> None:
        self.assigned = True
        self.position = {p: 0 for p in parts}  # Kafka's committed offsets are not trusted
        self.on_assign([(TOPIC, p) for p in parts])
        for p in parts:
            self.position[p] = self.start_offsets.get((TOPIC, p), 0)

    def take(self) -> None:
        self.on_revoke([(TOPIC, p) for p in sorted(self.position)])
        self.position = {}

    def poll(self, timeout: float = 1.0) -> list[Record]:
        out = []
        for p, at in self.position.items():
            if p in self.paused:
                continue
            rows = self.log.partitions[p][at: at + self.batch]
            out += [Record(v, TOPIC, p, at + i) for i, v in enumerate(rows)]
            self.position[p] = at + len(rows)
        return out

    def commit(self, positions):
        self.committed.update(positions)

    def pause(self, parts):
        self.paused.update(p for _, p in parts)

    def resume_at(self, topic, partition, offset):
        self.paused.discard(partition)
        self.position[partition] = offset


def _runner(member: Member, registry: Registry, every: int) -> ShardedRunner:
    def make_shard(partition: int) -> Shard:
        name = shard_name("reco", partition)
        learner, restored, number, offsets = load_shard(registry, name, TOPIC,
                                                        lambda: OnlineLearner(seed=partition))
        worker = LearnerWorker(member, learner, ListDeadLetters(),
                               publisher=RegistryPublisher(registry, name, parent=number),
                               publish_every_events=every, start_positions=offsets)
        if restored is not None:
            worker.restore(restored)
        return Shard(partition, worker, number)

    def latest(partition: int) -> int | None:
        found = registry.latest(shard_name("reco", partition))
        return None if found is None else found.number

    return ShardedRunner(member, TOPIC, make_shard, latest=latest)


def _events(n: int, seed: int) -> list[Event]:
    users = [f"u{(i * 7 + seed) % 23}" for i in range(n)]
    return [Event(f"e{seed}-{i}", u, f"i{(i * 3 + seed) % 13}", "rating", float(1 + (i + seed) % 5),
                  float(i)) for i, u in enumerate(users)]


def _steps(runner: ShardedRunner, member: Member, n: int) -> None:
    for _ in range(n):
        runner.process(member.poll())
        for shard in list(runner.shards.values()):
            shard.worker.maybe_publish()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), every=st.integers(1, 40), steps=st.lists(
    st.integers(0, 6), min_size=3, max_size=3), crash=st.booleans())
def test_rebalances_and_a_crash_lose_and_double_nothing(seed, every, steps, crash):
    events = _events(300, seed)
    log = Log(events)
    registry = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-shards-key"))
    a, b = Member(log), Member(log)
    ra, rb = _runner(a, registry, every), _runner(b, registry, every)
    a.give([0, 1, 2, 3])
    _steps(ra, a, steps[0])
    a.take()  # b joins: eager rebalance
    a.give([0, 1])
    b.give([2, 3])
    _steps(ra, a, steps[1])
    _steps(rb, b, steps[1] + 1)
    if crash:  # a dies: no revoke, what it learned since its last versions is lost
        b.take()
    else:
        a.take()
        b.take()
    b.give([0, 1, 2, 3])
    _steps(rb, b, steps[2])
    b.take()  # a comes back (a new process) and shares again
    a2 = Member(log)
    ra2 = _runner(a2, registry, every)
    a2.give([1, 3])
    b.give([0, 2])
    _steps(ra2, a2, 100)
    _steps(rb, b, 100)
    a2.take()
    b.take()
    for p in range(PARTS):
        version, model = registry.load_object(shard_name("reco", p), "latest")
        rows = log.partitions[p]
        assert version.offsets == ({f"{TOPIC}:{p}": len(rows)} if rows else {})
        alone = OnlineLearner(seed=p)
        for raw in rows:
            alone.learn_one(decode(raw))
        assert model.events_seen == len(rows) == alone.events_seen
        assert model.score() == alone.score()
        for user, item in itertools.product(("u0", "u5", "u11", "nobody"), ("i0", "i4", "x")):
            assert model.predict_one(user, item) == alone.predict_one(user, item)


def test_a_shard_that_cannot_open_is_paused_then_resumed_at_its_version():
    log = Log(_events(120, 3))
    registry = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-shards-key"))
    a = Member(log)
    ra = _runner(a, registry, 5)
    a.give([0, 1, 2, 3])
    _steps(ra, a, 3)
    a.take()
    down = {"on": True}
    real = ra.make_shard

    def flaky(partition: int) -> Shard:
        if down["on"] and partition == 2:
            raise ConnectionError("redis down")
        return real(partition)

    b = Member(log)
    rb = _runner(b, registry, 5)
    rb.make_shard, rb.retry_seconds = flaky, 0.0
    b.give([2, 3])
    assert 2 in b.paused and 2 not in rb.shards
    _steps(rb, b, 2)
    down["on"] = False
    rb._retry_pending()
    assert 2 not in b.paused and 2 in rb.shards
    _steps(rb, b, 100)
    b.take()
    for p in (2, 3):
        _, model = registry.load_object(shard_name("reco", p), "latest")
        assert model.events_seen == len(log.partitions[p])


def test_records_below_a_shards_resume_point_are_dropped():
    log = Log(_events(60, 1))
    registry = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-shards-key"))
    a = Member(log)
    ra = _runner(a, registry, 1)
    a.give([0, 1, 2, 3])
    _steps(ra, a, 2)
    learned = {p: s.worker.learner.events_seen for p, s in ra.shards.items()}
    a.position = {p: 0 for p in a.position}  # a rewind (e.g. a stale committed offset)
    _steps(ra, a, 2)
    assert {p: s.worker.learner.events_seen for p, s in ra.shards.items()} == learned


@pytest.mark.parametrize("kept", [True, False])
def test_a_partition_given_back_keeps_its_shard_only_if_nobody_published_since(kept):
    log = Log(_events(80, 2))
    registry = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-shards-key"))
    a, b = Member(log), Member(log)
    ra, rb = _runner(a, registry, 3), _runner(b, registry, 3)
    a.give([0, 1, 2, 3])
    _steps(ra, a, 2)
    before = ra.shards[0]
    a.take()
    if not kept:  # b learns partition 0 meanwhile and publishes
        b.give([0])
        _steps(rb, b, 2)
        b.take()
    a.give([0, 1, 2, 3])
    assert (ra.shards[0] is before) is kept


class Requests(ErasureFeed):
    """The erasure topic in memory, read as :class:`ErasureFeed` reads it (its rewind)."""

    def __init__(self, users: list[str]):
        self.topic, self.max_records, self._next = ERASURES, 500, {0: 0}
        self.rows = [encode_request(u) for u in users]

    def _seek(self, partition: int, offset: int) -> None:
        pass

    def poll(self, timeout: float = 0.0) -> list[Record]:
        at = self._next[0]
        self._next[0] = len(self.rows)
        return [Record(v, ERASURES, 0, at + i) for i, v in enumerate(self.rows[at:])]


def _erasing_runner(member: Member, registry: Registry, feed: Requests) -> ShardedRunner:
    def make_shard(partition: int) -> Shard:
        name = shard_name("reco", partition)
        learner, restored, number, offsets = load_shard(
            registry, name, TOPIC, lambda: OnlineLearner(seed=partition), also=(ERASURES,))
        worker = LearnerWorker(member, learner, ListDeadLetters(),
                               publisher=RegistryPublisher(registry, name, parent=number),
                               publish_every_events=10_000, start_positions=offsets,
                               erasure_topic=ERASURES, publish_unheld_erasures=False)
        if restored is not None:
            worker.restore(restored)
        return Shard(partition, worker, number)

    return ShardedRunner(member, TOPIC, make_shard, erasures=feed, latest=lambda p: (
        None if registry.latest(shard_name("reco", p)) is None
        else registry.latest(shard_name("reco", p)).number))


def test_an_erasure_request_reaches_the_users_shard_once_wherever_the_shards_move():
    """Runner a holds every shard: the user's shard erases and publishes at once, the others
    only place the request. a crashes before they publish; b takes the user's shard (its
    version covers the request: skipped), then every shard: its feed rewinds for the shards
    whose versions do not cover the request, which apply it to nothing."""
    victim = "erase-me"  # no other id, nor any pickled bytes, contain it
    log = Log([msgspec.structs.replace(e, user_id=victim) if e.user_id == "u5" else e
               for e in _events(120, 4)])
    registry = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-shards-key"))
    held = partition_for(victim, PARTS)
    a = Member(log, batch=200)
    ra = _erasing_runner(a, registry, Requests([victim]))
    a.give([0, 1, 2, 3])
    ra.process(a.poll())
    ra.publish_all()
    assert victim.encode() in registry.read_blob(shard_name("reco", held), "latest")
    numbers = {p: registry.latest(shard_name("reco", p)).number for p in range(PARTS)}
    assert ra.apply_erasures() == 1
    for shard in ra.shards.values():
        shard.worker.maybe_publish()
    after = {p: registry.latest(shard_name("reco", p)).number for p in range(PARTS)}
    assert after == {p: n + (p == held) for p, n in numbers.items()}  # the holder, at once
    erased = registry.latest(shard_name("reco", held))
    assert erased.offsets[f"{ERASURES}:0"] == 1
    assert victim.encode() not in registry.read_blob(shard_name("reco", held), "latest")
    # a crashes (no revoke): the other shards' versions do not cover the request
    b = Member(log, batch=200)
    feed = Requests([victim])
    rb = _erasing_runner(b, registry, feed)
    b.give([held])
    assert rb.apply_erasures() == 1 and rb.shards[held].worker.stats.erasures == 0  # covered
    assert feed._next == {0: 1}
    b.take()
    b.give([0, 1, 2, 3])
    assert feed._next == {0: 0}  # rewound for the shards that had not seen it
    assert rb.apply_erasures() == 1
    assert {p: s.worker.stats.erasures for p, s in rb.shards.items()} == {
        p: int(p != held) for p in range(PARTS)}
    rb.publish_all()
    for p in range(PARTS):
        version = registry.latest(shard_name("reco", p))
        assert version.offsets[f"{ERASURES}:0"] == 1
        assert victim.encode() not in registry.read_blob(shard_name("reco", p), "latest")
    assert registry.latest(shard_name("reco", held)).number == after[held]  # erased once
