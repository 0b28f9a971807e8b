"""Erasure of the rating blend, the ranking learners and the fine-tuner on the real Redis.

After ``forget`` (and the fine-tuner's erasure request), a scan of every Redis key but the
older versions' chunks, of every blob of the new versions and of the fine-tuner's replay
buffer finds neither the raw id nor the pseudonym; the user predicts (rating) and is
recommended (ranking) exactly as a cold user; after the purge no key holds them at all.
"""

from __future__ import annotations

import time

import pytest
import redis
from typer.testing import CliRunner

from consumers.deep_publisher import DeepPublisher
from consumers.erasure import encode_request
from consumers.finetune_worker import FineTuneWorker
from consumers.publisher import RegistryPublisher
from consumers.worker import LearnerWorker
from learning import DeepRecommender, FineTuner, ReplayBuffer
from learning.lifelong import LifelongLearner
from learning.ranking_learner import RankingLearner
from lifelong.cli import app
from model_store import Registry, Subscriber
from model_store.keys import Keys
from stream.pseudonym import Pseudonymizer
from stream.schema import Event, encode
from stream.source import BatchSource, ListDeadLetters, ListSource, Record

from .test_erasure import _traces

pytestmark = pytest.mark.integration

RAW = "erase-me-models@example.org"
COLD_RAW = "never-seen@example.org"
KEY = "integration-models-pseudonym-key-0123"
ERASE = "events.erasures"



def _raw_events(kind: str, n: int = 900) -> list[bytes]:
    now = time.time()
    users = [RAW] + [f"someone-{k}" for k in range(7)]
    return [encode(Event(f"e{k}", users[(k * 5 + k // 8) % 8], f"i{(k * 7) % 23}", kind,
                         float(1 + k % 5) if kind == "rating" else 1.0, now - 2000 + k))
            for k in range(n)]


@pytest.fixture()
def env(redis_service, store_prefix, monkeypatch):
    prefix = store_prefix  # its keys are deleted afterwards
    monkeypatch.setenv("REDIS_URL", redis_service.address)
    monkeypatch.setenv("LIFELONG_PREFIX", prefix)
    monkeypatch.setenv("LIFELONG_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("LIFELONG_MODEL", "reco")
    monkeypatch.delenv("LIFELONG_PSEUDONYM_KEY_FILE", raising=False)
    monkeypatch.delenv("LIFELONG_FINETUNE_MODEL", raising=False)
    reg = Registry.from_url(redis_service.address, prefix=prefix)
    client = redis.Redis.from_url(redis_service.address)
    yield reg, client, prefix
    client.close()
    reg.close()


def _finetune(reg: Registry, p: Pseudonymizer, raw: list[bytes]):
    records = [Record(v, "events", 0, k) for k, v in enumerate(raw)]
    source = BatchSource([records[k:k + 150] for k in range(0, len(records), 150)])
    tuner = FineTuner(DeepRecommender(n_factors=4, clip=(1.0, 5.0), seed=3), device="cpu",
                      batch_size=64)
    buffer = ReplayBuffer(3000, recent_window=300, seed=1)
    worker = FineTuneWorker(source, tuner, buffer, DeepPublisher(reg, "reco-deep"),
                            round_every_events=300, min_fresh=100, pseudonymizer=p,
                            erasure_topic=ERASE)
    worker.run(idle_timeout=0.3, poll_timeout=0.01)
    return worker, source, tuner, buffer


@pytest.mark.parametrize("kind", ["lifelong", "blend", "bpr", "sequence"])
def test_forget_leaves_no_trace_and_the_user_is_served_as_a_cold_one(env, kind) -> None:
    reg, client, prefix = env
    p = Pseudonymizer(KEY.encode())
    pseudonym = p(RAW)
    needles = [RAW.encode(), pseudonym.encode()]
    raw = _raw_events("rating" if kind == "lifelong" else "click")
    worker, source, tuner, buffer = _finetune(reg, p, raw)
    assert pseudonym in tuner.recommender.users and len(reg.versions("reco-deep")) >= 2

    if kind == "lifelong":
        learner = LifelongLearner(clip=(1.0, 5.0), refit_every=200)
        learner.set_deep(DeepPublisher(reg, "reco-deep").production()[1], version=1)
        assert pseudonym in learner.deep.users
    else:
        learner = RankingLearner(kind, seed=2)
    LearnerWorker(ListSource(raw, batch_size=300), learner, ListDeadLetters(),
                  publisher=RegistryPublisher(reg, "reco"), publish_every_events=300,
                  pseudonymizer=p).run()
    assert len(reg.versions("reco")) == 3
    assert _traces(client, prefix, needles)  # the scan finds the user before erasure
    assert _traces(client, prefix, [b"someone-", RAW.encode()]) == []  # raw ids: never

    # the running fine-tuner gets the request on its erasure topic (before forget runs)
    source.batches.append([Record(encode_request(pseudonym), ERASE, 0, 0)])
    worker.run(idle_timeout=0.3, poll_timeout=0.01)
    assert worker.stats.erasures == 1 and pseudonym not in tuner.recommender.users
    snap = buffer.snapshot()
    kept = set(snap["reservoir.user_row"].tolist() + snap["recent.user_row"].tolist())
    others = tuner.recommender.users.lookup([p(f"someone-{k}") for k in range(7)], now=0.0,
                                            add=False)
    assert kept and kept <= set(others.tolist())  # only other users' samples are left

    result = CliRunner().invoke(app, ["forget", "--user", RAW, "--json"])
    assert result.exit_code == 0, result.output
    assert RAW not in result.output and pseudonym not in result.output
    new = reg.latest("reco").number
    assert new == 4 and all(n not in reg.read_blob("reco", new) for n in needles)
    deep_latest = reg.latest("reco-deep").number
    for model, number in (("reco-deep", deep_latest),
                          ("reco-deep", reg.get_alias("reco-deep", "production"))):
        assert all(n not in reg.read_blob(model, number) for n in needles)
    keys = Keys(prefix)
    older = tuple(keys.chunk(m, v.number, 0).rsplit(":", 1)[0].encode() + b":"
                  for m, latest in (("reco", new), ("reco-deep", deep_latest))
                  for v in reg.versions(m) if v.number < latest
                  and v.number != reg.get_alias(m, "production"))
    assert _traces(client, prefix, needles, skip=older) == []

    # the user is served exactly as a cold user: rating blend and ranking
    with Subscriber(reg, "reco", pseudonymizer=p) as sub:
        assert sub.wait_for_version(new, timeout=20)
        if kind == "lifelong":
            items = [f"i{k}" for k in range(23)]
            assert [sub.predict(RAW, i) for i in items] == [sub.predict(COLD_RAW, i)
                                                             for i in items]
        else:
            assert sub.recommend(RAW, 10) == sub.recommend(COLD_RAW, 10)
            assert len(sub.recommend(RAW, 10)) == 10
    with Subscriber(reg, "reco-deep", alias="production", pseudonymizer=p) as sub:
        assert sub.wait_for_version(reg.get_alias("reco-deep", "production"), timeout=20)
        assert sub.predict(RAW, "i3") == sub.predict(COLD_RAW, "i3")

    runner = CliRunner()
    for model in ("reco", "reco-deep"):
        result = runner.invoke(app, ["models", "gc", model, "--purge-user", RAW,
                                     "--move-aliases"])
        assert result.exit_code == 0, result.output
    assert _traces(client, prefix, needles) == []
