"""Subscriber behaviour every backend must support (memory in unit, Redis in integration)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from model_store import FormatError, ModelStoreError, ModelVersion, Registry, Signer
from model_store.backend import Backend
from model_store.recommend import TopK
from model_store.subscriber import Subscriber
from tests.unit.model_store.conformance import BackendFixtures, FakeClock
from tests.unit.model_store.helpers import ByItem, ByUser, Const, VectorScorer


def version_gauge(metrics: CollectorRegistry, model: str, alias: str) -> float | None:
    return metrics.get_sample_value("lifelong_subscriber_model_version",
                                    {"model": model, "alias": alias})


def failures(metrics: CollectorRegistry, model: str, reason: str) -> float:
    return metrics.get_sample_value("lifelong_subscriber_load_failures_total",
                                    {"model": model, "reason": reason}) or 0.0


def eventually(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


class SubscriberConformance(BackendFixtures):
    @pytest.fixture()
    def metrics(self) -> CollectorRegistry:
        return CollectorRegistry()

    def test_serves_latest_and_swaps(self, registry: Registry,
                                     metrics: CollectorRegistry) -> None:
        registry.publish_object("reco", Const(1.0))
        with Subscriber(registry, "reco", poll_interval=0.2, metrics_registry=metrics) as sub:
            assert sub.current[0].number == 1 and sub.predict("u", "i") == 1.0
            registry.publish_object("reco", Const(2.0))
            assert sub.wait_for_version(2, timeout=5)
            assert sub.predict("u", "i") == 2.0 and isinstance(sub.current[1], Const)
            assert version_gauge(metrics, "reco", "latest") == 2.0

    def test_alarms_are_ignored(self, registry: Registry, metrics: CollectorRegistry) -> None:
        registry.publish_object("reco", Const(1.0))
        registry.promote("reco", 1)
        sub = Subscriber(registry, "reco", alias="production", poll_interval=0.2,
                         metrics_registry=metrics, coalesce=False)
        with sub:
            registry.alarm("reco", detail={"events": 5})
            registry.publish_object("reco", Const(2.0))
            registry.alarm("reco")
            registry.promote("reco", 2)
            registry.alarm("reco")
            assert sub.wait_for_version(2, timeout=5, exact=True)
            assert sub.predict("u", "i") == 2.0
        total = sum(s.value for m in metrics.collect() for s in m.samples
                    if s.name == "lifelong_subscriber_load_failures_total")
        assert total == 0

    def test_starts_before_any_version(self, registry: Registry) -> None:
        with Subscriber(registry, "reco", poll_interval=0.2) as sub:
            assert sub.current is None
            with pytest.raises(ModelStoreError, match='model "reco" alias "latest"'):
                sub.predict("u", "i")
            registry.publish_object("reco", Const(7.0))
            assert sub.wait_for_version(1, timeout=5) and sub.predict("u", "i") == 7.0

    def test_every_version_in_order_without_coalescing(self, registry: Registry) -> None:
        seen: list[int] = []
        registry.publish_object("reco", Const(0.0))
        sub = Subscriber(registry, "reco", poll_interval=0.2, coalesce=False,
                         on_swap=lambda alias, v: seen.append(v.number))
        with sub:
            for i in range(1, 20):
                registry.publish_object("reco", Const(float(i)))
            assert sub.wait_for_version(20, timeout=10)
        assert seen == list(range(1, 21))

    def test_follows_an_alias_and_rollback(self, registry: Registry) -> None:
        for i in range(3):
            registry.publish_object("reco", Const(float(i + 1)))
        registry.promote("reco", 1)
        with Subscriber(registry, "reco", alias="production", poll_interval=0.2) as sub:
            assert sub.current[0].number == 1
            registry.promote("reco", 3)
            assert sub.wait_for_version(3, timeout=5, exact=True)
            registry.rollback("reco")
            assert sub.wait_for_version(1, timeout=5, exact=True)
            assert sub.predict("u", "i") == 1.0

    def test_tampered_version_is_refused_old_keeps_serving(
        self, registry: Registry, backend: Backend, metrics: CollectorRegistry
    ) -> None:
        registry.publish_object("reco", Const(1.0))
        registry.promote("reco", 1)
        with Subscriber(registry, "reco", alias="production", poll_interval=0.1,
                        metrics_registry=metrics) as sub:
            registry.publish_object("reco", Const(2.0))
            self.tamper_chunk(backend, "reco", 2, 0, b"\x80\x05N.")
            registry.promote("reco", 2)
            assert eventually(lambda: failures(metrics, "reco", "integrity") >= 1)
            assert sub.current[0].number == 1 and sub.predict("u", "i") == 1.0
            registry.publish_object("reco", Const(3.0))
            registry.promote("reco", 3)
            assert sub.wait_for_version(3, timeout=5) and sub.predict("u", "i") == 3.0

    def test_wrong_key_and_missing_key_are_refused(
        self, registry: Registry, backend: Backend, clock: FakeClock,
        metrics: CollectorRegistry,
    ) -> None:
        registry.publish_object("reco", Const(1.0))
        rogue = Registry(backend, signer=Signer(b"rogue-key-0123456789abcdef"), clock=clock)
        keyless = Registry(backend, clock=clock)
        with Subscriber(registry, "reco", poll_interval=0.1, metrics_registry=metrics) as sub:
            rogue.publish_object("reco", Const(666.0))
            assert eventually(lambda: failures(metrics, "reco", "integrity") >= 1)
            assert sub.predict("u", "i") == 1.0
        other = CollectorRegistry()
        with Subscriber(keyless, "reco", metrics_registry=other) as sub:
            assert sub.current is None and failures(other, "reco", "key") == 1.0

    def test_custom_loader_and_rank(self, registry: Registry) -> None:
        registry.publish("reco", b"a=1,b=3,c=2", format="scores")

        def load(version: ModelVersion, data: bytes) -> ByItem:
            assert version.format == "scores"
            pairs = (p.split("=") for p in data.decode().split(","))
            return ByItem({k: float(v) for k, v in pairs})

        with Subscriber(registry, "reco", loader=load) as sub:
            assert sub.rank("u", ["a", "b", "c", "d"], k=2) == [("b", 3.0), ("c", 2.0)]

    def test_bytes_cannot_predict(self, registry: Registry) -> None:
        registry.publish("reco", b"weights", format="opaque")
        with Subscriber(registry, "reco") as sub:
            assert sub.current[1] == b"weights"
            with pytest.raises(FormatError, match='model "reco" version 1 cannot predict'):
                sub.predict("u", "i")

    def test_canary_routes_a_stable_share(self, registry: Registry,
                                          metrics: CollectorRegistry) -> None:
        registry.publish_object("reco", Const(1.0))
        registry.promote("reco", 1)
        with Subscriber(registry, "reco", alias="production", canary_share=0.2,
                        poll_interval=0.1, metrics_registry=metrics) as sub:
            users = [f"user-{i}" for i in range(2000)]
            assert {sub.predict(u, "i") for u in users} == {1.0}  # no candidate yet
            registry.publish_object("reco", Const(2.0))
            registry.set_alias("reco", "candidate", 2)
            assert sub.wait_for_version(2, timeout=5, alias="candidate")
            first = [sub.predict(u, "i") for u in users]
            assert 0.15 < first.count(2.0) / len(users) < 0.25
            assert first == [sub.predict(u, "i") for u in users]  # stable per user
            assert version_gauge(metrics, "reco", "candidate") == 2.0

    def test_predict_never_sees_a_half_swapped_model(self, registry: Registry) -> None:
        registry.publish_object("reco", Const(1.0))
        stop = threading.Event()
        bad: list[object] = []

        def hammer(sub: Subscriber) -> None:
            last = 0.0
            while not stop.is_set():
                value = sub.predict("u", "i")
                if value < last or value != int(value):
                    bad.append(value)
                last = value
                time.sleep(0)  # let the publisher and subscriber threads run

        with Subscriber(registry, "reco", poll_interval=0.1) as sub:
            threads = [threading.Thread(target=hammer, args=(sub,)) for _ in range(4)]
            for t in threads:
                t.start()
            for i in range(2, 30):
                registry.publish_object("reco", Const(float(i)))
            assert sub.wait_for_version(29, timeout=10)
            stop.set()
            for t in threads:
                t.join()
        assert bad == []

    def test_two_subscribers_share_a_metrics_registry(self, registry: Registry,
                                                      metrics: CollectorRegistry) -> None:
        registry.publish_object("a", Const(1.0))
        registry.publish_object("b", Const(2.0))
        with Subscriber(registry, "a", metrics_registry=metrics), \
                Subscriber(registry, "b", metrics_registry=metrics):
            assert version_gauge(metrics, "a", "latest") == 1.0
            assert version_gauge(metrics, "b", "latest") == 1.0

    def test_recommend_serves_the_whole_catalogue(self, registry: Registry) -> None:
        # 200 items: the conformance stores cut blobs into 4-byte chunks, and one publish
        # watches every chunk key (2,000 items made 6,500 keys, slow on a busy Redis)
        model = VectorScorer.random(200, seed=11, n_seen=10)
        registry.publish_object("rank", model)
        with Subscriber(registry, "rank", poll_interval=0.2) as sub:
            got = sub.recommend("u3", k=10)
            scores = model.score_items("u3")
            scores[model.seen["u3"]] = -np.inf
            best = np.argsort(-scores, kind="stable")[:10]
            assert got == [(model.items[r], float(model.score_items("u3")[r])) for r in best]
            cold = sub.recommend("nobody", k=10)
            assert len(cold) == 10 and cold[0][0] == model.items[int(np.argmax(model.popularity))]
            assert sub.recommend("u3", k=3, candidates=["i1", "i2", "zzz"]) == sorted(
                [(i, float(model.score_items("u3")[int(i[1:])])) for i in ["i1", "i2"]
                 if int(i[1:]) not in model.seen["u3"]], key=lambda p: -p[1])
            assert len(sub.recommend("u3", k=5000)) == 190
            s3 = model.score_items("u3")
            assert sub.rank("u3", ["i1", "i2", "zzz"], k=3) == [
                *sorted([("i1", float(s3[1])), ("i2", float(s3[2]))], key=lambda p: -p[1]),
                ("zzz", float("-inf"))]  # rank() works on an ItemScorer; unknown ids last
            assert sub.predict("nobody", "i5") == float(model.popularity[5])
            newer = VectorScorer.random(50, seed=12)
            registry.publish_object("rank", newer)
            assert sub.wait_for_version(2, timeout=5)
            assert {i for i, _ in sub.recommend("u3", k=100)} <= set(newer.items)
            assert len(sub.recommend("u3", k=100)) == 45

    def test_recommend_knobs_through_the_subscriber(self, registry: Registry) -> None:
        model = VectorScorer.random(300, seed=13)
        registry.publish_object("rank", model)
        newest = set(model.items[-20:])

        def lists(seed: int) -> list[list[tuple[str, float]]]:
            topk = TopK(explore=0.2, explore_window=20, diversity=0.5, seed=seed)
            with Subscriber(registry, "rank", topk=topk) as sub:
                return [sub.recommend(f"u{n % 5}", k=10) for n in range(20)]

        first = lists(3)
        assert first == lists(3)
        assert all(sum(i in newest for i, _ in got) >= 2 for got in first)

    def test_recommend_needs_an_item_scorer(self, registry: Registry) -> None:
        registry.publish_object("reco", Const(1.0))
        with Subscriber(registry, "reco") as sub:
            with pytest.raises(FormatError, match='model "reco" version 1 cannot recommend: '
                                                  "Const is not an ItemScorer"):
                sub.recommend("u")
            assert sub.rank("u", ["a", "b"], k=1) == [("a", 1.0)]  # rank() is unchanged
        with Subscriber(registry, "nothing") as sub, \
                pytest.raises(ModelStoreError, match="no version loaded yet"):
            sub.recommend("u")

    def test_recommend_follows_the_canary(self, registry: Registry) -> None:
        prod = VectorScorer(["a", "b"], np.eye(2), {}, np.array([1.0, 0.0]))
        cand = VectorScorer(["a", "b"], np.eye(2), {}, np.array([0.0, 1.0]))
        registry.publish_object("rank", prod)
        registry.promote("rank", 1)
        registry.publish_object("rank", cand)
        registry.set_alias("rank", "candidate", 2)
        with Subscriber(registry, "rank", alias="production", canary_share=0.3) as sub:
            assert sub.wait_for_version(2, timeout=5, alias="candidate")
            firsts = [sub.recommend(f"user-{n}", k=1)[0][0] for n in range(1000)]
            assert 0.22 < firsts.count("b") / 1000 < 0.38

    def test_pseudonymizer_maps_raw_ids_like_the_learner(self, registry: Registry) -> None:
        from stream.pseudonym import Pseudonymizer

        p = Pseudonymizer(b"subscriber-test-key-0123456789", key_id="k1")
        registry.publish_object("reco", ByUser({p("alice"): 4.5}))
        with Subscriber(registry, "reco", poll_interval=0.2, pseudonymizer=p) as sub:
            assert sub.wait_for_version(1)
            assert sub.predict("alice", "i1") == 4.5
            assert sub.rank("alice", ["i1"]) == [("i1", 4.5)]
            assert sub.predict("bob", "i1") == 0.0
        with Subscriber(registry, "reco", poll_interval=0.2) as raw:
            assert raw.wait_for_version(1) and raw.predict("alice", "i1") == 0.0
