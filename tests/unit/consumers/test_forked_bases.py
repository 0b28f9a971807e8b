"""Bases written off the learning path: the chain, the switch to the new base, failures.

The real child (``os.fork``) needs a store shared across processes and is tested against
Redis in tests/integration/test_forked_bases.py; here a writer that writes at once (the
state at the consistent point, as the child's copy is) and reports ``delay`` publishes later
drives the publisher over ``memory://``.
"""

import random

import pytest

from consumers.base_writer import ForkedWriter
from consumers.checkpoint import Checkpoint
from consumers.publisher import RegistryPublisher
from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from model_store import Registry
from model_store.replicas import Replicas
from model_store.signing import Signer
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource

KEY = b"0123456789abcdef-unit-forked-key"
TABLES = ("u_biases", "i_biases", "u_latents", "i_latents")


class LaterWriter:
    """Runs ``write()`` at ``start`` and reports it ``delay`` polls later (or its failure)."""

    def __init__(self, delay=2, fail=False):
        self.delay, self.fail = delay, fail
        self.started, self.cancelled = 0, 0
        self._result = None

    @property
    def running(self):
        return self._result is not None

    def start(self, write):
        if self._result is not None:
            return False
        self.started += 1
        try:
            if self.fail:
                raise OSError("disk on fire")
            self._result = [self.delay, ("ok", write())]
        except OSError as exc:
            self._result = [self.delay, ("failed", str(exc))]
        return True

    def poll(self):
        if self._result is None:
            return None
        if self._result[0] > 0:
            self._result[0] -= 1
            return None
        done, self._result = self._result[1], None
        return done

    def cancel(self):
        self.cancelled += self._result is not None
        self._result = None

    def close(self, wait_seconds=0.0):
        self.cancel()


def _stream(n=900, users=150, items=60, seed=5):
    rng = random.Random(seed)
    return [encode(Event(f"e{k}", f"u{rng.randrange(users)}", f"i{rng.randrange(items)}",
                         "rating", float(rng.randint(1, 5)), 1_700_000_000.0 + k))
            for k in range(n)]


def _same(a, b):
    ra, rb = a.model._model, b.model._model
    for name in TABLES:
        ta, tb = getattr(ra, name), getattr(rb, name)
        assert set(ta) == set(tb), name
        for key in ta:
            assert (ta[key] == tb[key]).all() if hasattr(ta[key], "all") else ta[key] == tb[key]
    assert a.events_seen == b.events_seen and a.score() == b.score()


def _run(values, pub, reg, *, follow=None, on_publish=None):
    """The worker loop; after each version a follower (Replicas) serves it."""
    worker = LearnerWorker(ListSource(values, batch_size=25), OnlineLearner("BiasedMF", seed=7),
                           ListDeadLetters(), publisher=pub, publish_every_events=50,
                           publish_every_seconds=1e9)
    served = None
    while batch := worker.source.poll(1.0):
        worker.process(batch)
        if worker._publish_due() and worker.publish() is not None:
            if on_publish is not None:
                on_publish(worker)
            if follow is not None:  # each version that moved latest, in order (here: all)
                for version in reg.versions("reco"):
                    if served is None or version.number > served[0].number:
                        obj = follow.load("latest", served, version)
                        served = (version, obj)
                        follow.prepare("latest", version)
                _same(served[1], worker.learner)  # the subscriber serves the learner's state
    return worker, served


def test_a_child_written_base_continues_the_chain_and_subscribers_never_reload():
    reg = Registry.from_url("memory://", signer=Signer(KEY))
    writer = LaterWriter(delay=2)
    pub = RegistryPublisher(reg, "reco", compact_after=3, compact_share=100.0,
                            base_writer="fork", writer=writer)
    follow = Replicas(reg, "reco")
    worker, _ = _run(_stream(), pub, reg, follow=follow)
    versions = reg.versions("reco")
    rebased = [v for v in versions if "rebase_of" in v.extra]
    assert pub.forked_bases >= 2 and pub.bases == 1
    assert len(rebased) == pub.forked_bases + writer.running  # the last one: not reported yet
    for base in rebased:  # the same state as the delta it names, whose offsets it carries
        named = reg.get("reco", base.extra["rebase_of"])
        assert base.format == "river-pickle" and base.offsets == named.offsets
        _, a = reg.load_object("reco", base.number)
        _, b = reg.load_object("reco", named.number)
        _same(a, b)
    switched = [v for v in versions if v.format == "river-delta"
                and v.parent in {b.number for b in rebased}]
    assert len(switched) == pub.forked_bases  # each reported base got its first delta
    assert follow.reloaded == 1  # the first base only: every later version was a delta
    _, obj = reg.load_object("reco", "latest")  # the resume path: base + deltas
    restored = Checkpoint.of(obj)
    _same(restored.learner, worker.learner)
    assert restored.dedup == worker.checkpoint().dedup
    def windows(quality):  # msgpack gives lists where the gates keep tuples
        return {k: [{u: list(w) for u, w in rule.items()} for rule in rules]
                for k, rules in quality.items()}

    assert windows(restored.quality) == windows(worker.checkpoint().quality)


def test_a_failing_child_keeps_the_chain_retries_later_then_bases_in_line():
    reg = Registry.from_url("memory://", signer=Signer(KEY))
    now = [0.0]
    writer = LaterWriter(delay=0, fail=True)
    pub = RegistryPublisher(reg, "reco", compact_after=3, compact_share=100.0,
                            base_writer="fork", writer=writer, retry_seconds=5.0,
                            clock=lambda: now[0])
    def tick(worker):
        now[0] += 1.0
    worker, _ = _run(_stream(), pub, reg, on_publish=tick)
    formats = "".join(v.format[6] for v in reg.versions("reco"))
    # one in-line base, deltas past compact_after while the child fails, an in-line base
    # at twice compact_after; retries every 5 s (one publish a second here)
    assert formats.startswith("pddddddp"), formats
    assert pub.forked_failures == writer.started >= 2 and pub.forked_bases == 0
    _, obj = reg.load_object("reco", "latest")
    _same(Checkpoint.of(obj).learner, worker.learner)


def test_an_erasure_drops_the_base_being_written_and_publishes_one_in_line():
    reg = Registry.from_url("memory://", signer=Signer(KEY))
    writer = LaterWriter(delay=5)
    pub = RegistryPublisher(reg, "reco", compact_after=2, compact_share=100.0,
                            base_writer="fork", writer=writer)
    learner = OnlineLearner("BiasedMF", seed=1)
    for k in range(4):
        learner.learn_one(Event(f"e{k}", f"u{k % 2}", "i", "rating", 4.0, float(k)))
        pub.publish(learner, {("events", 0): k + 1})
    assert writer.running  # a child writes the base after the second delta
    learner.forget_user("u0")
    number = pub.publish(learner, {("events", 0): 5})
    assert writer.cancelled == 1 and reg.get("reco", number).format == "river-pickle"
    assert "u0" not in learner.model._model.u_latents


def test_the_fork_setting_falls_back_in_line_where_the_store_is_not_shared():
    reg = Registry.from_url("memory://", signer=Signer(KEY))
    pub = RegistryPublisher(reg, "reco", base_writer="fork")
    assert pub._writer is None
    with pytest.raises(ValueError, match="base_writer"):
        RegistryPublisher(reg, "reco", base_writer="thread")


def test_the_forked_writer_reports_failures_and_kills_a_child_past_its_time():
    writer = ForkedWriter(timeout_seconds=60.0)
    assert writer.start(lambda: 1 / 0)
    assert writer.close(wait_seconds=10.0) == ("failed", "ZeroDivisionError: division by zero")
    now = [0.0]
    slow = ForkedWriter(timeout_seconds=1.0, clock=lambda: now[0])
    import time

    assert slow.start(lambda: time.sleep(30) or 1)
    assert not slow.start(lambda: 2)  # one child at a time
    assert slow.poll() is None
    now[0] = 2.0
    assert slow.poll()[0] == "failed" and not slow.running and slow.failures == 1


def test_a_resumed_learner_continues_the_chain_with_a_delta_not_a_base():
    values = _stream(600)
    values = values[:400] + values[350:360] + values[400:]  # ten re-sent across the restart
    straight = LearnerWorker(ListSource(values, batch_size=25), OnlineLearner("BiasedMF", seed=7),
                             ListDeadLetters())
    straight.run()
    reg = Registry.from_url("memory://", signer=Signer(KEY))
    first = RegistryPublisher(reg, "reco", compact_share=100.0)
    _run(values[:400], first, reg)
    version, obj = reg.load_object("reco", "latest")  # what wiring's resume does
    restored = Checkpoint.of(obj)
    offset = version.offsets["memory:0"]
    worker = LearnerWorker(ListSource(values[offset:], batch_size=25), restored.learner,
                           ListDeadLetters(), publisher=None)
    worker.restore(restored)
    pub = RegistryPublisher(reg, "reco", parent=version.number, compact_share=100.0)
    pub.continue_from(version, worker.checkpoint())
    worker.publisher = pub
    worker.publish_every_events, worker.publish_every_seconds = 50, 1e9
    stats = worker.run()
    after = [v for v in reg.versions("reco") if v.number > version.number]
    assert after and all(v.format == "river-delta" for v in after) and pub.bases == 0
    assert after[0].parent == version.number and stats.duplicates == 10
    _, final = reg.load_object("reco", "latest")
    _same(Checkpoint.of(final).learner, straight.learner)
    _same(worker.learner, straight.learner)


def test_the_base_writer_setting():
    from lifelong.config import ConfigError, Settings

    assert Settings.from_env({}).base_writer == "fork"
    assert Settings.from_env({"LIFELONG_BASE_WRITER": "inline"}).base_writer == "inline"
    with pytest.raises(ConfigError, match="LIFELONG_BASE_WRITER"):
        Settings.from_env({"LIFELONG_BASE_WRITER": "thread"})


def test_the_child_runs_below_the_learners_cpu_priority():
    import os

    mine = os.getpriority(os.PRIO_PROCESS, 0)
    writer = ForkedWriter(timeout_seconds=60.0)
    assert writer.start(lambda: os.getpriority(os.PRIO_PROCESS, 0))
    assert writer.close(wait_seconds=10.0) == ("ok", min(mine + 10, 19))
    assert os.getpriority(os.PRIO_PROCESS, 0) == mine  # the parent's is unchanged
