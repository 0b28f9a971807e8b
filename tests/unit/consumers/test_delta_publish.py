"""Versions as a base plus row deltas, through the worker: restart, compaction, retention."""

import random

import msgspec
import pytest

from consumers.checkpoint import Checkpoint
from consumers.publisher import RegistryPublisher
from consumers.retention import RetainLast
from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from model_store import Registry
from model_store.delta import DeltaBlob, load_chain
from model_store.errors import IntegrityError
from model_store.signing import Signer
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource

KEY = b"0123456789abcdef-unit-delta-key"


def _stream(n=400, users=120, items=60, seed=3):
    rng = random.Random(seed)
    raw = [encode(Event(f"e{k}", f"u{rng.randrange(users)}", f"i{rng.randrange(items)}",
                        "rating", float(rng.randint(1, 5)), 1_700_000_000.0 + k))
           for k in range(n)]
    return raw[:300] + raw[250:260] + raw[300:]  # ten re-sent events: duplicates


def _reg():
    return Registry.from_url("memory://", signer=Signer(KEY))


def _worker(values, learner, reg, **publisher):
    pub = RegistryPublisher(reg, "reco", compact_share=publisher.pop("compact_share", 100.0),
                            **publisher)
    return LearnerWorker(ListSource(values, batch_size=25), learner, ListDeadLetters(),
                         publisher=pub, publish_every_events=50, publish_every_seconds=1e9), pub


def test_restart_from_base_plus_deltas_equals_the_uninterrupted_run():
    values = _stream()
    straight = OnlineLearner("BiasedMF", seed=7)
    LearnerWorker(ListSource(values, batch_size=25), straight, ListDeadLetters()).run()

    reg = _reg()
    crashed, pub = _worker(values[:260], OnlineLearner("BiasedMF", seed=7), reg)
    batches = [crashed.source.poll(1.0) for _ in range(11)]  # 275 > 260: the list ends
    for batch in batches:
        if batch:
            crashed.process(batch)
            if crashed._publish_due():
                crashed.publish()
    # kill -9: the events since the last publish are lost, nothing else runs
    formats = [v.format for v in reg.versions("reco")]
    assert formats[0] == "river-pickle" and set(formats[1:]) == {"river-delta"}
    assert pub.deltas == len(formats) - 1 >= 3

    version, obj = reg.load_object("reco", "latest")  # what wiring's resume does
    assert version.format == "river-delta"
    restored = Checkpoint.of(obj)
    offset = version.offsets["memory:0"]
    assert restored.learner.events_seen == offset  # no duplicate before 260
    resumed = LearnerWorker(ListSource(values[offset:], batch_size=25), restored.learner,
                            ListDeadLetters())
    resumed.restore(restored)
    stats = resumed.run()
    assert stats.duplicates == 10  # the re-sent events: the dedup window came back whole
    learner = restored.learner
    assert learner.score() == straight.score()
    for user, item in [("u1", "i2"), ("u77", "i5"), ("u119", "i59"), ("new", "i1")]:
        assert learner.predict_one(user, item) == straight.predict_one(user, item)


def test_a_base_after_compact_after_deltas_or_a_size_share_or_an_erasure():
    reg = _reg()
    worker, pub = _worker(_stream(), OnlineLearner("BiasedMF"), reg, compact_after=3)
    worker.run()
    formats = [v.format[6] for v in reg.versions("reco")]  # p(ickle) or d(elta)
    assert "".join(formats).startswith("pdddpddd")
    reg2 = _reg()
    worker, _ = _worker(_stream(), OnlineLearner("BiasedMF"), reg2, compact_share=0.5)
    worker.run()
    sizes = [(v.format, v.size, v.extra.get("chain_bytes", 0)) for v in reg2.versions("reco")]
    base = 0
    for fmt, size, chain_bytes in sizes:
        base = size if fmt == "river-pickle" else base
        assert chain_bytes <= 0.5 * base
    assert {f for f, _, _ in sizes} == {"river-pickle", "river-delta"}
    learner = OnlineLearner("BiasedMF")
    reg3 = _reg()
    pub = RegistryPublisher(reg3, "reco", compact_share=100.0)
    learner.learn_one(Event("e1", "alice", "i1", "rating", 4.0, 0.0))
    pub.publish(learner, {})
    learner.learn_one(Event("e2", "bob", "i1", "rating", 4.0, 1.0))
    pub.publish(learner, {})
    learner.forget_user("alice")
    pub.publish(learner, {})
    assert [v.format for v in reg3.versions("reco")] == ["river-pickle", "river-delta",
                                                          "river-pickle"]


def test_other_learners_and_compact_after_zero_publish_whole_versions():
    for learner, kwargs in [(OnlineLearner("FMRegressor"), {}),
                            (OnlineLearner("BiasedMF"), {"compact_after": 0})]:
        reg = _reg()
        worker, _ = _worker(_stream(200), learner, reg, **kwargs)
        worker.run()
        assert {v.format for v in reg.versions("reco")} == {"river-pickle"}


def test_a_delta_is_bound_to_its_parent_and_a_spliced_one_is_refused():
    reg = _reg()
    worker, _ = _worker(_stream(200), OnlineLearner("BiasedMF"), reg)
    worker.run()
    last = reg.latest("reco")
    assert last.format == "river-delta"
    _, blob = reg.load("reco", last.number)
    forged = msgspec.structs.replace(blob, parent_sha256="0" * 64)
    from model_store.delta import encode as encode_delta

    spliced = reg.publish("reco", encode_delta(forged), format="river-delta",
                          metadata={"format_version": 1}, parent=last.parent)
    with pytest.raises(IntegrityError, match="not a delta over"):
        load_chain(reg, "reco", spliced)
    assert isinstance(blob, DeltaBlob) and blob.parent_sha256 == reg.get(
        "reco", last.parent).sha256


def test_retention_keeps_the_chains_of_kept_and_aliased_versions():
    reg = _reg()
    worker, _ = _worker(_stream(), OnlineLearner("BiasedMF"), reg, compact_after=4)
    worker.publisher = RetainLast(worker.publisher, reg, "reco", keep_last=2,
                                  grace_seconds=0, every_seconds=0)
    worker.run()
    numbers = [v.number for v in reg.versions("reco")]
    latest = reg.latest("reco")
    chain = [v.number for v in _chain(reg, latest)]
    assert set(chain) <= set(numbers)
    reg.load_object("reco", "latest")  # loads: nothing it needs was deleted
    # an alias on an old delta protects that delta's whole chain
    reg2 = _reg()
    worker, _ = _worker(_stream(), OnlineLearner("BiasedMF"), reg2, compact_after=4)
    worker.run()
    old = next(v for v in reg2.versions("reco") if v.format == "river-delta")
    reg2.promote("reco", old.number)
    reg2.gc("reco", keep_last=1, grace_seconds=0)
    reg2.load_object("reco", "production")
    reg2.load_object("reco", "latest")
    kept = {v.number for v in reg2.versions("reco")}
    assert {v.number for v in _chain(reg2, old)} <= kept
    assert len(kept) < len(range(1, reg2.latest("reco").number + 1))


def _chain(reg, version):
    from model_store.delta import chain_of

    return chain_of(reg, "reco", version)


def test_a_nan_in_a_changed_row_refuses_the_publish():
    reg = _reg()
    learner = OnlineLearner("BiasedMF")
    worker, _ = _worker(_stream(100), learner, reg)
    worker.run()
    before = reg.latest("reco").number
    learner.learn_one(Event("x", "u1", "i1", "rating", 3.0, 0.0))
    learner.model._model.u_latents["u1"][0] = float("nan")
    worker._since_publish = 1
    assert worker.publish() is None and worker.stats.refused_publishes == 1
    assert reg.latest("reco").number == before


def test_the_floor_keeps_publishing_under_its_share_of_time():
    now = [0.0]

    class SlowPublisher:
        calls = 0

        def publish(self, learner, positions):
            now[0] += 1.0  # each publish takes one second
            SlowPublisher.calls += 1
            return SlowPublisher.calls

    def clock():
        return now[0]

    src = ListSource(_stream(400), batch_size=10)
    worker = LearnerWorker(src, OnlineLearner(), ListDeadLetters(), publisher=SlowPublisher(),
                           publish_every_events=10, publish_every_seconds=1e9, clock=clock,
                           publish_max_share=0.25, publish_burst_seconds=1.0)
    batches = 0
    while (batch := src.poll(0)) and batches < 100:
        batches += 1
        worker.process(batch)
        now[0] += 1.0  # a batch of learning (10 events, so a publish is due): 1 s
        if worker._publish_due():
            worker.publish()
    # each 1 s publish spends the budget that 4 s of running refill (share 0.25), so not
    # one a batch: 41 batches, ~13 publishes of 1 s, a quarter of the time plus the burst
    assert batches == 41 and 8 <= SlowPublisher.calls <= 1 + 0.25 * now[0] + 1
    assert SlowPublisher.calls < 30
    with pytest.raises(ValueError, match="publish_max_share"):
        LearnerWorker(src, OnlineLearner(), ListDeadLetters(), publish_max_share=0.0)


def test_settings_and_help_state_the_defaults():
    from typer.testing import CliRunner

    from lifelong.cli import app
    from lifelong.config import ConfigError, Settings

    s = Settings.from_env({})
    assert (s.publish_max_share, s.compact_after, s.compact_share) == (0.1, 1000, 0.5)
    s = Settings.from_env({"LIFELONG_COMPACT_AFTER": "0", "LIFELONG_PUBLISH_MAX_SHARE": "0.2"})
    assert (s.compact_after, s.publish_max_share) == (0, 0.2)
    with pytest.raises(ConfigError, match="LIFELONG_COMPACT_AFTER"):
        Settings.from_env({"LIFELONG_COMPACT_AFTER": "-1"})
    text = " ".join(CliRunner().invoke(app, ["learn", "--help"], env={"COLUMNS": "200"})
                    .output.split())
    for option in ("--publish-max-share", "--compact-after", "--compact-share"):
        assert option in text
    assert "LIFELONG_COMPACT_AFTER" in text and "default: 0.1" in text


def test_purges_never_break_a_chain_that_latest_or_an_alias_needs():
    from consumers.erasure import purge_before, purge_user
    from model_store.errors import ModelStoreError

    reg = _reg()
    learner = OnlineLearner("BiasedMF")
    pub = RegistryPublisher(reg, "reco", compact_share=100.0)
    learner.learn_one(Event("e0", "alice", "i0", "rating", 4.0, 0.0))
    for k in range(1, 6):
        learner.learn_one(Event(f"e{k}", f"u{k}", f"i{k}", "rating", 4.0, float(k)))
        pub.publish(learner, {("memory", 0): k})
    assert [v.format[6] for v in reg.versions("reco")] == list("pdddd")
    # latest (a delta) holds alice through its base: purging her would break it
    with pytest.raises(ModelStoreError, match="run forget first"):
        purge_user(reg, "reco", "alice")
    reg.promote("reco", 3)
    report = purge_before(reg, "reco", 5)
    assert report.deleted == [] and set(report.aliased) == {1, 2, 3, 4}
    reg.load_object("reco", "production")
    reg.load_object("reco", "latest")
    report = purge_before(reg, "reco", 5, move_aliases=True)  # production -> latest (5)
    assert report.deleted == [] and reg.aliases("reco")["production"] == 5
    reg.load_object("reco", "production")


def test_the_compaction_floor_keeps_a_growing_model_on_its_chain():
    """Every event a new user: at share 0.5 of a small base, bases come at each 50% of
    growth; with a floor far above the model's size, only the first version is whole."""
    rng = random.Random(5)
    values = [encode(Event(f"e{k}", f"new{k}", f"i{rng.randrange(30)}", "rating", 4.0,
                           1_700_000_000.0 + k)) for k in range(600)]
    formats = {}
    for floor in (0, 1 << 30):
        reg = _reg()
        worker, _ = _worker(values, OnlineLearner("BiasedMF"), reg, compact_share=0.5,
                              compact_floor_bytes=floor)
        worker.run()
        formats[floor] = [v.format for v in reg.versions("reco")]
        if floor:  # the chain's bytes stay under the share of the floor
            assert all(v.extra.get("chain_bytes", 0) <= 0.5 * floor
                       for v in reg.versions("reco"))
    assert formats[0].count("river-pickle") >= 3
    assert formats[1 << 30] == ["river-pickle"] + ["river-delta"] * 11
    with pytest.raises(ValueError):
        RegistryPublisher(_reg(), "reco", compact_floor_bytes=-1)
