"""The learner worker joins impressions (ranking): negatives learned, state checkpointed."""

from __future__ import annotations

import pickle

from consumers.checkpoint import Checkpoint
from consumers.impressions import ImpressionFeed, ImpressionJoin
from consumers.worker import LearnerWorker
from learning.ranking_learner import RankingLearner
from stream.impression import Impression, encode_impression
from stream.schema import Event, encode
from stream.source import ListDeadLetters, Record

T0 = 1_700_000_000.0


class TwoTopics:
    """Records of the events and impressions topics, in the order given, one batch each."""

    def __init__(self, batches: list[list[Record]]) -> None:
        self.batches = list(batches)
        self.committed: dict[tuple[str, int], int] = {}

    def poll(self, timeout: float = 1.0) -> list[Record]:
        return self.batches.pop(0) if self.batches else []

    def commit(self, positions) -> None:
        self.committed.update(positions)

    @property
    def exhausted(self) -> bool:
        return not self.batches

    def close(self) -> None:
        pass


def traffic() -> list[Record]:
    out: list[Record] = []
    offsets = {"events": 0, "impressions": 0}

    def put(topic: str, value: bytes) -> None:
        out.append(Record(value, topic, 0, offsets[topic]))
        offsets[topic] += 1

    for k in range(20):
        t = T0 + 100.0 * k
        user = f"u{k % 3}"
        put("events", encode(Event(f"v{k}", user, f"i{k % 5}", "view", 1.0, t)))
        put("impressions", encode_impression(Impression(f"imp-{k}", user,
                                                        ("i0", "i1", "i2"), t + 1)))
        put("events", encode(Event(f"c{k}", user, "i1", "click", 1.0, t + 5)))
    put("impressions", b"not an impression")
    return out


def worker_for(records: list[Record]) -> tuple[LearnerWorker, RankingLearner]:
    learner = RankingLearner("decayed-popularity")
    feed = ImpressionFeed("impressions", ImpressionJoin(window=50.0),
                          lambda s: learner.learn_negative(s.user, s.item, s.ts))
    batches = [records[i : i + 7] for i in range(0, len(records), 7)]
    worker = LearnerWorker(TwoTopics(batches), learner, ListDeadLetters(), impressions=feed)
    return worker, learner


def test_clicks_join_and_unclicked_items_become_negatives() -> None:
    worker, learner = worker_for(traffic())
    stats = worker.run()
    counters = worker.impressions.counters
    assert counters["impressions"] == 20 and counters["joined"] == 20
    assert counters["expired"] == 19  # the last one is still live within its window
    assert counters["negative"] == 2 * 19 and counters["invalid"] == 1
    # imp-0 expired (at t0 + 100) before any event had made i2 known: that one is not learned
    assert learner.negatives_learned == 2 * 19 - 1
    assert stats.learned == 40  # impressions are not events
    # shown-and-not-clicked items are discounted in the served scores, not the clicked one
    plain = RankingLearner("decayed-popularity")
    for r in traffic():
        if r.topic == "events":
            from stream.schema import decode
            plain.learn_one(decode(r.value))
    diff = plain.score_items("u0") - learner.score_items("u0")
    rows = {item: row for row, item in enumerate(learner.item_ids())}
    assert diff[rows["i0"]] > 0 and diff[rows["i2"]] > 0 and diff[rows["i1"]] == 0


def test_join_state_rides_in_the_checkpoint_and_resumes_exactly() -> None:
    records = traffic()
    cut = 31
    whole, _ = worker_for(records)
    whole.run()
    first, _ = worker_for(records[:cut])
    first.run()
    served = pickle.loads(pickle.dumps(first.checkpoint()))  # what a version stores
    restored = Checkpoint.of(served)
    assert restored.impressions is not None
    second, learner = worker_for(records[cut - 4 :])  # redelivery of 4 records
    second.learner = learner = restored.learner
    second.impressions.learn_negative = lambda s: learner.learn_negative(s.user, s.item, s.ts)
    second.restore(restored)
    second.run()
    again, once = dict(second.impressions.counters), dict(whole.impressions.counters)
    assert again.pop("duplicate") == 1 and once.pop("duplicate") == 0  # imp-9 came twice
    assert again == once  # nothing joined twice, no negative counted twice
    assert learner.negatives_learned == whole.learner.negatives_learned


def test_a_checkpoint_without_impressions_pickles_as_before() -> None:
    cp = Checkpoint(RankingLearner("popularity"), b"", {})
    assert len(cp.__reduce__()[1]) == 3
    assert Checkpoint.of(pickle.loads(pickle.dumps(cp))).impressions is None
