"""The shards' item-side exchange: sums of updates, exactly once across crashes and failures."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.item_exchange import ExchangingPublisher, ItemExchange, items_name
from learning.item_side import ItemSide
from learning.online import OnlineLearner
from model_store.registry import Registry
from stream.schema import Event

ITEMS = ["a", "b", "c"]


class FlakyStore:
    """A memory registry whose next ``fail`` calls (publish, latest or read) raise."""

    def __init__(self) -> None:
        self.inner = Registry.from_url("memory://", signer=None)
        self.fail = 0

    def _check(self) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("store down")

    def latest(self, model: str) -> Any:
        self._check()
        return self.inner.latest(model)

    def read_blob(self, model: str, version: Any) -> bytes:
        self._check()
        return self.inner.read_blob(model, version)

    def publish(self, model: str, blob: bytes, **kw: Any) -> Any:
        self._check()
        return self.inner.publish(model, blob, **kw)

    def gc(self, model: str, keep_last: int = 10, **kw: Any) -> Any:
        return self.inner.gc(model, keep_last, **kw)

    def versions(self, model: str) -> Any:
        return self.inner.versions(model)


def _bias(learner: OnlineLearner, item: str) -> float:
    return learner.model._model.i_biases.get(item, 0.0)


def _update(learner: OnlineLearner, item: str, x: float) -> None:
    """One SGD-like step of an item bias, the item marked dirty (what learn_one does)."""
    learner.model._model.i_biases[item] += x
    learner._dirty_items.add(item)  # type: ignore[union-attr]


op = st.one_of(
    st.tuples(st.just("learn"), st.integers(0, 2), st.sampled_from(ITEMS),
              st.integers(-8, 8).map(lambda n: n / 8)),
    st.tuples(st.just("checkpoint"), st.integers(0, 2), st.sampled_from(["ok", "fail", "crash"]),
              st.integers(0, 3)),
    st.tuples(st.just("exchange"), st.integers(0, 2), st.just(""), st.integers(0, 3)),
    st.tuples(st.just("restore"), st.integers(0, 2), st.just(""), st.just(0)))


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40))
def test_every_update_is_merged_once_into_every_shard(ops: list[tuple[Any, ...]]) -> None:
    """Every update is in every shard once, whatever happens.

    Updates, checkpoints (failing, crashing before the exchange), exchanges between
    checkpoints, store failures during an exchange and restores from the last checkpoint
    (re-learning what came after, as Kafka re-delivers it): after a clean final round
    every shard holds the sum of all updates.
    """
    store = FlakyStore()
    shards = [OnlineLearner(seed=k) for k in range(3)]
    exchanges = [ItemExchange(store, "m", k, 3) for k in range(3)]
    checkpoints: list[bytes | None] = [None] * 3
    since: list[list[tuple[str, float]]] = [[] for _ in range(3)]  # learned after the checkpoint
    total = dict.fromkeys(ITEMS, 0.0)
    for kind, k, what, n in ops:
        if kind == "learn":
            _update(shards[k], what, n)
            since[k].append((what, n))
            total[what] += n
        elif kind == "checkpoint":
            exchanges[k].before_checkpoint(shards[k])
            if what == "fail":  # the checkpoint is not stored: learning goes on
                continue
            checkpoints[k], since[k] = pickle.dumps(shards[k]), []
            shards[k].clear_dirty()  # what the publisher does once the version is stored
            if what == "crash":  # died before the exchange: restored below
                shards[k] = pickle.loads(checkpoints[k])
                exchanges[k] = ItemExchange(store, "m", k, 3)
                continue
            store.fail = n  # the store fails the next n calls of the exchange
            exchanges[k].after_checkpoint(shards[k])
            store.fail = 0
        elif kind == "exchange":  # between checkpoints (maybe_exchange), the store failing
            store.fail = n
            exchanges[k].exchange(shards[k])
            store.fail = 0
        else:  # kill -9: a new process resumes from the last checkpoint and re-learns
            shards[k] = (pickle.loads(checkpoints[k]) if checkpoints[k] is not None
                         else OnlineLearner(seed=k))
            exchanges[k] = ItemExchange(store, "m", k, 3)
            for item, x in since[k]:
                _update(shards[k], item, x)
    for _ in range(2):  # a clean round: everyone publishes, then everyone merges everything
        for k in range(3):
            exchanges[k].before_checkpoint(shards[k])
            exchanges[k].after_checkpoint(shards[k])
    for k in range(3):
        for item in ITEMS:
            assert math.isclose(_bias(shards[k], item), total[item], abs_tol=1e-9), (k, item)


def _events(n: int, seed: int) -> list[Event]:
    rng = np.random.default_rng(seed)
    return [Event(f"e{i}", f"u{rng.integers(12)}", f"i{rng.integers(6)}", "rating",
                  float(rng.integers(1, 6)), float(i)) for i in range(n)]


def _run(events: list[Event], restore_at: int | None, factors: bool) -> list[OnlineLearner]:
    store = Registry.from_url("memory://", signer=None)
    shards = [OnlineLearner(seed=k) for k in range(2)]
    exchanges = [ItemExchange(store, "m", k, 2, factors=factors) for k in range(2)]
    for n, e in enumerate(events, 1):
        k = int(e.user_id[1:]) % 2
        shards[k].learn_one(e)
        if n % 10 == 0:
            for j in range(2):
                exchanges[j].before_checkpoint(shards[j])
                exchanges[j].after_checkpoint(shards[j])
                if n == restore_at:  # snapshot -> restore -> continue, in a new process
                    shards[j] = pickle.loads(pickle.dumps(shards[j]))
                    exchanges[j] = ItemExchange(store, "m", j, 2, factors=factors)
    return shards


@given(st.booleans())
@settings(max_examples=4, deadline=None)
def test_restore_then_continue_equals_the_uninterrupted_run(factors: bool) -> None:
    events = _events(120, 5)
    plain, resumed = _run(events, None, factors), _run(events, 60, factors)
    for a, b in zip(plain, resumed, strict=True):
        assert [a.predict_one(f"u{u}", f"i{i}") for u in range(12) for i in range(6)] == \
            [b.predict_one(f"u{u}", f"i{i}") for u in range(12) for i in range(6)]
        assert ItemSide.of(a).seen == ItemSide.of(b).seen


def test_factors_adopt_a_peers_new_item_and_mean_is_global() -> None:
    store = Registry.from_url("memory://", signer=None)
    a, b = OnlineLearner(seed=1), OnlineLearner(seed=2)
    ea, eb = (ItemExchange(store, "m", k, 2, factors=True) for k in range(2))
    a.learn_one(Event("e0", "u0", "new", "rating", 5.0, 0.0))
    b.learn_one(Event("e1", "u1", "other", "rating", 3.0, 1.0))
    for ex, learner in ((ea, a), (eb, b), (ea, a)):
        ex.before_checkpoint(learner)
        ex.after_checkpoint(learner)
    ra, rb = a.model._model, b.model._model
    assert np.array_equal(ra.i_latents["new"], rb.i_latents["new"])
    assert np.array_equal(ra.i_latents["other"], rb.i_latents["other"])
    assert ra.global_mean.get() == rb.global_mean.get() == 4.0
    assert store.latest(items_name("m", 0)).number == 1  # nothing new: no empty delta


def test_a_failed_checkpoint_sends_nothing_and_propagates() -> None:
    store = Registry.from_url("memory://", signer=None)

    class Down:
        def publish(self, learner: Any, positions: Any) -> int:
            raise ConnectionError("down")

    learner = OnlineLearner()
    learner.learn_one(Event("e0", "u0", "i", "rating", 5.0, 0.0))
    pub = ExchangingPublisher(Down(), ItemExchange(store, "m", 0, 2))
    try:
        pub.publish(learner, {})
    except ConnectionError:
        pass
    else:
        raise AssertionError("the checkpoint failure must reach the worker")
    assert store.latest(items_name("m", 0)) is None
    assert ItemSide.of(learner).pending is not None  # sent with the next checkpoint


def test_chains_are_pruned_and_a_shard_far_behind_skips_what_is_gone_counted() -> None:
    from model_store.url import open_backend

    now = [0.0]
    store = Registry(open_backend("memory://"), signer=None, clock=lambda: now[0])
    a, b = OnlineLearner(seed=1), OnlineLearner(seed=2)
    ea = ItemExchange(store, "m", 0, 2, keep_last=3, prune_every=1)
    eb = ItemExchange(store, "m", 1, 2, keep_last=3, prune_every=1)
    for _ in range(10):  # shard 0 exchanges ten times; shard 1 is away
        now[0] += 100.0  # past the store's grace period
        _update(a, "a", 1.0)
        ea.exchange(a)
    kept = [v.number for v in store.versions(items_name("m", 0))]
    assert kept == [8, 9, 10]  # the chain is bounded
    assert eb.merge(b) == 3 and eb.skipped == 7  # the pruned seven are skipped, counted
    assert ItemSide.of(b).seen == {0: 10}
    assert _bias(b, "a") == 3.0  # the three kept updates, each once
    assert eb.merge(b) == 0


def _side(learner: OnlineLearner) -> tuple[Any, ...]:
    import msgspec

    side = ItemSide.of(learner)
    return (side.factors, side.sent, msgspec.to_builtins(side.pending), side.seen, side._mean,
            side._biases, {k: v.tolist() for k, v in side._latents.items()})


def _grid(learner: OnlineLearner) -> list[float]:
    return [learner.predict_one(f"u{u}", f"i{i}") for u in range(12) for i in range(8)]


@given(st.booleans(), st.sampled_from([None, 70, 130]), st.integers(0, 3))
@settings(max_examples=8, deadline=None)
def test_exchanging_shards_publish_deltas_and_base_plus_deltas_is_the_checkpoint(
        factors: bool, restore_at: int | None, every: int) -> None:
    """Shards exchanging item rows publish row deltas that hold the merged rows.

    Every version (base + deltas, loaded as a subscriber or a resuming shard does) equals,
    bit for bit, the learner the shard pickled at that publish: predictions, item rows and
    the exchange state (:class:`ItemSide`); a shard restored from its delta chain (kill -9)
    continues as one restored from that pickle. Exchanges also run between checkpoints.
    """
    from consumers.publisher import RegistryPublisher
    from model_store.signing import Signer

    events = _events(200, 11) + [Event(f"n{i}", f"u{i % 12}", f"i{6 + i % 2}", "rating",
                                       float(1 + i % 5), 200.0 + i) for i in range(40)]

    def run(from_chain: bool) -> tuple[list[OnlineLearner], list[list[tuple[int, bytes]]]]:
        store = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-unit-x-key"))
        shards = [OnlineLearner(seed=k) for k in range(2)]
        taken: list[list[tuple[int, bytes]]] = [[], []]

        class Recording:  # the store's publisher, remembering what each version must be
            def __init__(self, k: int, parent: Any = None) -> None:
                self.k = k
                self.inner = RegistryPublisher(store, f"m.p{k}", compact_share=100.0)
                if parent is not None:
                    self.inner.continue_from(parent)

            def publish(self, learner: Any, positions: Any) -> int:
                state = pickle.dumps(learner)
                number = self.inner.publish(learner, positions)
                taken[self.k].append((number, state))
                return number

        def publisher(k: int, parent: Any = None) -> tuple[ItemExchange, ExchangingPublisher]:
            ex = ItemExchange(store, "m", k, 2, factors=factors, every_events=every * 3)
            return ex, ExchangingPublisher(Recording(k, parent), ex)

        pubs = [publisher(k) for k in range(2)]
        for n, e in enumerate(events, 1):
            k = int(e.user_id[1:]) % 2
            shards[k].learn_one(e)
            pubs[k][0].maybe_exchange(shards[k])
            if n % 10 == 0:
                for j in range(2):
                    pubs[j][1].publish(shards[j], {})
            if n == restore_at:  # shard 0 dies after its checkpoint; restored in a new process
                number, state = taken[0][-1]
                if from_chain:
                    version, shards[0] = store.load_object("m.p0", "latest")
                    assert version.number == number
                else:
                    version, shards[0] = store.get("m.p0", number), pickle.loads(state)
                pubs[0] = publisher(0, version)
        for k in range(2):
            formats = [v.format for v in store.versions(f"m.p{k}")]
            assert formats[0] == "river-pickle" and set(formats[1:]) == {"river-delta"}
            for number, state in taken[k]:
                _, loaded = store.load_object(f"m.p{k}", number)
                want = pickle.loads(state)
                assert _grid(loaded) == _grid(want), (k, number)
                assert _side(loaded) == _side(want), (k, number)
                river, ref = loaded.model._model, want.model._model
                assert dict(river.i_biases) == dict(ref.i_biases)
                assert {i: v.tolist() for i, v in river.i_latents.items()} == \
                    {i: v.tolist() for i, v in ref.i_latents.items()}
        return shards, taken

    chain, _ = run(True)
    if restore_at is not None:
        pickled, _ = run(False)
        for a, b in zip(chain, pickled, strict=True):
            assert _grid(a) == _grid(b)
            assert _side(a) == _side(b)
