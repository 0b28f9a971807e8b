"""The format table: old blobs (written by release 861a053) still load; resume after restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumers.publisher import RegistryPublisher
from learning.finetune import FineTuner
from learning.lifelong import LifelongLearner
from learning.online import OnlineLearner
from learning.serving import LegacyLifelongModel, LifelongModel
from learning.torch_models import DeepRecommender
from model_store import FormatError, ModelVersion, Registry, Subscriber, codec
from model_store.signing import Signer
from stream.synthetic import SyntheticStream

FIXTURE = Path(__file__).parents[2] / "fixtures" / "model_store_v0"
INDEX = json.loads((FIXTURE / "versions.json").read_text())
SIGNER = Signer(INDEX["key"].encode())
KINDS = {"online": OnlineLearner, "lifelong": LegacyLifelongModel, "deep": DeepRecommender}


def old_version(name: str) -> tuple[ModelVersion, bytes]:
    entry = INDEX["versions"][name]
    fields = entry["fields"]
    version = ModelVersion.from_fields(fields["model"], int(fields["number"]), fields)
    return version, (FIXTURE / entry["file"]).read_bytes()


@pytest.mark.parametrize("name", sorted(KINDS))
def test_blobs_of_the_previous_release_load_and_predict_the_same(name):
    version, blob = old_version(name)
    assert codec.format_version(version) == 0  # written before the format table
    obj = codec.decode(version, blob, SIGNER)
    assert isinstance(obj, KINDS[name])
    got = [obj.predict_one(u, i) for u, i in INDEX["pairs"]]
    # a pair with an unknown id ("nobody", "nothing") no longer draws a random latent into
    # the model (learning.erasure.predict_unchanged): it differs by that latent's dot only
    tol = [1e-2 if {"nobody", "nothing"} & {u, i} else 1e-6 for u, i in INDEX["pairs"]]
    want = INDEX["versions"][name]["predictions"]
    assert all(abs(g - w) <= t for g, w, t in zip(got, want, tol, strict=True)), (got, want)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_old_blobs_through_registry_load_and_the_subscriber(name):
    version, blob = old_version(name)
    registry = Registry.from_url("memory://", signer=SIGNER)
    registry.publish("m", blob, format=version.format, metadata={"extra": 1})
    assert isinstance(registry.load("m", "latest")[1], KINDS[name])
    with Subscriber(registry, "m") as sub:  # the default loader: the codec table
        u, i = INDEX["pairs"][0]
        assert sub.predict(u, i) == pytest.approx(INDEX["versions"][name]["predictions"][0],
                                                  abs=1e-6)


def test_old_pickle_refused_when_altered_or_unsigned():
    version, blob = old_version("lifelong")
    with pytest.raises(Exception, match="sha256 mismatch"):
        codec.decode(version, blob[:-1] + b"\0", SIGNER)
    with pytest.raises(Exception, match="bad signature"):
        codec.decode(version, blob, Signer(b"another-key-0123456789"))
    with pytest.raises(FormatError, match="no codec"):
        codec.encode("nope", object())


def events(n: int, seed: int = 4):
    return list(SyntheticStream(n_users=80, n_items=90, n_events=n, drift_at=(), seed=seed))


def test_a_published_lifelong_model_resumes_after_restart_with_the_same_predictions():
    stream = events(2600)
    deep = DeepRecommender(n_factors=6, clip=(1.0, 5.0), seed=0)
    learner = LifelongLearner(clip=(1.0, 5.0), round_every=800, finetuner=FineTuner(
        deep, device="cpu", batch_size=128, epochs_per_round=2))
    for ev in stream[:2400]:
        learner.learn_one(ev)
    assert learner.deep_version is not None
    registry = Registry.from_url("memory://", signer=SIGNER)
    number = RegistryPublisher(registry, "reco").publish(learner, {("events", 0): 2400})
    version, served = registry.load_object("reco", number)
    assert isinstance(served, LifelongModel) and codec.format_version(version) == 1
    assert served.events_seen == 2400 and version.offsets == {"events:0": 2400}
    resumed = LifelongLearner.resume(served)  # the restarted process
    pairs = [(e.user_id, e.item_id) for e in stream[:50]] + [("new", "i1"), ("u1", "new")]
    assert [resumed.predict_one(u, i) for u, i in pairs] == \
        [learner.predict_one(u, i) for u, i in pairs]
    # continuing equals the uninterrupted run (no round falls in this stretch)
    assert [resumed.learn_one(e) for e in stream[2400:]] == \
        [learner.learn_one(e) for e in stream[2400:]]
    assert resumed.events_seen == learner.events_seen == 2600
