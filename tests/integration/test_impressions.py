"""Impressions and clicks on real Kafka, joined across a restart of the joining process.

Impressions go through :class:`stream.impression_logger.ImpressionLogger`, clicks through
the event producer, to their own topics. A first "process" consumes both, joins, and
checkpoints the join state with the offsets it covers as a signed version in the real
Redis model store (as the learner checkpoints itself); a second process restores that
version, resumes a little *before* the checkpointed offsets (redelivery, as when Kafka's
committed offsets lag) and finishes. Nothing is joined twice, and the joins and negatives
equal an uninterrupted run.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest
import redis
from kafka import KafkaConsumer, TopicPartition

from consumers.impressions import ImpressionJoin, Sample
from model_store import Registry, Signer
from model_store.subscriber import Subscriber
from stream.admin import TopicSpec, delete_topics, ensure_topics
from stream.impression import Impression, decode_impression
from stream.impression_logger import ImpressionLogger
from stream.producer import EventProducer
from stream.schema import Event, decode
from tests.integration.model_store.conftest import delete_prefix
from tests.unit.model_store.helpers import VectorScorer

pytestmark = pytest.mark.integration

N_IMPRESSIONS = 300


def traffic(seed: int) -> tuple[list[Impression], list[Event]]:
    rng = random.Random(seed)
    imps: list[Impression] = []
    clicks: list[Event] = []
    for k in range(N_IMPRESSIONS):
        t = 1_700_000_000.0 + 10.0 * k
        user = f"u{rng.randrange(12)}"
        shown = tuple(rng.sample([f"i{j}" for j in range(40)], 6))
        imps.append(Impression(f"imp-{k}", user, shown, t, f"req-{k}", "reco", 1 + k // 100))
        for item in shown:
            if rng.random() < 0.25:
                clicks.append(Event(f"c-{k}-{item}", user, item, "click", 1.0,
                                    t + rng.uniform(1, 90)))
        if rng.random() < 0.2:
            clicks.append(Event(f"o-{k}", user, "organic", "purchase", 1.0, t + 2))
    clicks.sort(key=lambda e: e.ts)
    return imps, clicks


def read_all(bootstrap: str, starts: dict[str, int], ends: dict[str, int]) -> list:
    """Records of each topic (one partition) from ``starts`` up to ``ends``, bounded."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=1000)
    parts = {t: TopicPartition(t, 0) for t in starts}
    consumer.assign(list(parts.values()))
    for topic, tp in parts.items():
        consumer.seek(tp, starts[topic])
    got: list = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and \
                any(consumer.position(parts[t]) < ends[t] for t in parts):
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(r for r in records if r.offset < ends[r.topic])
    finally:
        consumer.close()
    return got


def merged(records: list, imp_topic: str) -> list[tuple[str, int, Impression | Event]]:
    """Decode and order by event time (each topic is produced in time order)."""
    out = []
    for r in records:
        obj = decode_impression(r.value) if r.topic == imp_topic else decode(r.value)
        assert isinstance(obj, Impression | Event), obj
        out.append((r.topic, r.offset, obj))
    out.sort(key=lambda x: (x[2].ts, x[0], x[1]))
    return out


def run(join: ImpressionJoin, records: list) -> list[Sample]:
    out: list[Sample] = []
    for _, _, obj in records:
        out.extend(join.add(obj) if isinstance(obj, Impression) else join.observe(obj))
    return out


def test_join_survives_a_restart_on_real_kafka(kafka, redis_service, unique) -> None:
    imp_topic, ev_topic = f"it-imp-{unique}", f"it-clicks-{unique}"
    prefix = f"test-imp-{unique}"
    ensure_topics(kafka.address, [TopicSpec(imp_topic, 1), TopicSpec(ev_topic, 1)])
    imps, clicks = traffic(7)
    signer = Signer(os.urandom(32))
    try:
        with ImpressionLogger(kafka.address, imp_topic) as logger:
            for imp in imps:
                logger.log(imp.user_id, list(imp.items), ts=imp.ts,
                           impression_id=imp.impression_id, request_id=imp.request_id,
                           model=imp.model, version=imp.version)
        with EventProducer(kafka.address, ev_topic) as producer:
            producer.send_all(clicks)
        ends = {imp_topic: len(imps), ev_topic: len(clicks)}
        everything = merged(read_all(kafka.address, dict.fromkeys(ends, 0), ends), imp_topic)
        assert len(everything) == len(imps) + len(clicks)

        whole = ImpressionJoin(window=120.0)
        expected = run(whole, everything) + whole.flush()

        # process 1: the first 60% in time order, then a checkpoint with its offsets
        cut = int(len(everything) * 0.6)
        first = ImpressionJoin(window=120.0)
        got = run(first, everything[:cut])
        offsets = {t: 1 + max(o for topic, o, _ in everything[:cut] if topic == t)
                   for t in ends}
        store = Registry.from_url(redis_service.address, prefix=prefix, signer=signer)
        store.publish_object("reco-join", first, metadata={"offsets": offsets})
        store.close()
        del first  # the process is gone

        # process 2: restore, resume 25 records early on each topic (redelivered)
        store = Registry.from_url(redis_service.address, prefix=prefix, signer=signer)
        version, join = store.load_object("reco-join", "latest")
        store.close()
        assert version.offsets == offsets and isinstance(join, ImpressionJoin)
        starts = {t: max(0, o - 25) for t, o in version.offsets.items()}
        rest = merged(read_all(kafka.address, starts, ends), imp_topic)
        got += run(join, rest) + join.flush()

        slots = Counter((s.impression_id, s.item) for s in got)
        assert max(slots.values()) == 1  # nothing joined (or negated) twice
        assert sorted(got) == sorted(expected)
        c, w = join.counters, whole.counters
        assert c["joined"] == w["joined"] == sum(s.label for s in got) > 50
        assert c["negative"] == w["negative"] == len(got) - c["joined"] > 100
        assert c["expired"] == len(imps) and c["impressions"] == len(imps)
        assert c["duplicate"] > 0 and c["repeat"] > 0  # the redelivered records
        shown = {(i.impression_id, item) for i in imps for item in i.items}
        assert set(slots) == shown
    finally:
        delete_topics(kafka.address, [imp_topic, ev_topic])
        client = redis.Redis.from_url(redis_service.address)
        delete_prefix(client, prefix)
        client.close()


def test_recommend_log_click_join_on_real_services(kafka, redis_service, unique) -> None:
    """The loop a service runs: recommend from the Redis store, log what was shown to
    Kafka, users click some of it; the join labels every shown item once."""
    imp_topic, ev_topic = f"it-loop-imp-{unique}", f"it-loop-ev-{unique}"
    prefix = f"test-loop-{unique}"
    ensure_topics(kafka.address, [TopicSpec(imp_topic, 1), TopicSpec(ev_topic, 1)])
    store = Registry.from_url(redis_service.address, prefix=prefix, signer=Signer(os.urandom(32)))
    model = VectorScorer.random(500, n_users=10, seed=4)
    store.publish_object("reco", model)
    rng = random.Random(1)
    clicks: list[Event] = []
    shown: dict[str, tuple[str, ...]] = {}
    try:
        with Subscriber(store, "reco") as sub, \
                ImpressionLogger(kafka.address, imp_topic) as logger:
            for k in range(40):
                user, t = f"u{k % 10}", 1_700_000_000.0 + 5.0 * k
                recs = sub.recommend(user, k=8)
                assert len(recs) == 8 and not {i for i, _ in recs} & \
                    {model.items[r] for r in model.seen[user]}
                imp = logger.log(user, [i for i, _ in recs], ts=t, model="reco",
                                 version=sub.current[0].number)
                shown[imp.impression_id] = imp.items
                for item in imp.items[:2]:
                    if rng.random() < 0.5:
                        clicks.append(Event(f"c{k}{item}", user, item, "click", 1.0, t + 1))
        with EventProducer(kafka.address, ev_topic) as producer:
            producer.send_all(clicks)
        ends = {imp_topic: 40, ev_topic: len(clicks)}
        records = merged(read_all(kafka.address, dict.fromkeys(ends, 0), ends), imp_topic)
        join = ImpressionJoin(window=60.0)
        samples = run(join, records) + join.flush()
        assert sum(s.label for s in samples) == len(clicks) == join.counters["joined"]
        assert len(samples) == 8 * 40 and join.counters["negative"] == 8 * 40 - len(clicks)
        assert {(s.impression_id, s.item) for s in samples} == \
            {(iid, item) for iid, items in shown.items() for item in items}
    finally:
        store.close()
        delete_topics(kafka.address, [imp_topic, ev_topic])
        client = redis.Redis.from_url(redis_service.address)
        delete_prefix(client, prefix)
        client.close()


def test_logger_pseudonymises_the_user_id_and_key(kafka, unique) -> None:
    """With the producers' pseudonym key the raw user id never reaches Kafka."""
    from stream.pseudonym import Pseudonymizer

    topic = f"it-imp-pseudo-{unique}"
    ensure_topics(kafka.address, [TopicSpec(topic, 1)])
    p = Pseudonymizer(b"0123456789abcdef-secret", key_id="k1")
    try:
        with ImpressionLogger(kafka.address, topic, pseudonymizer=p) as logger:
            shown = logger.log("alice-raw-id", ["a", "b"], ts=1.0)
        assert shown.user_id == p("alice-raw-id")
        consumer = KafkaConsumer(bootstrap_servers=kafka.address, auto_offset_reset="earliest",
                                 enable_auto_commit=False, consumer_timeout_ms=10_000)
        consumer.assign([TopicPartition(topic, 0)])
        records = [r for r in consumer]
        consumer.close()
        assert len(records) == 1
        assert b"alice-raw-id" not in records[0].value + records[0].key
        assert decode_impression(records[0].value).user_id == p("alice-raw-id")
        assert records[0].key == p("alice-raw-id").encode()
    finally:
        delete_topics(kafka.address, [topic])
