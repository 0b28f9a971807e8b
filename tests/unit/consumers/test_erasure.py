import pickle

import pytest

from consumers.checkpoint import Checkpoint
from consumers.erasure import AUDIT_KIND, forget_user, purge_before, purge_user, receipt
from consumers.publisher import RegistryPublisher
from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from model_store import ModelStoreError, Registry
from model_store.signing import Signer
from stream.pseudonym import Pseudonymizer
from stream.schema import Event, encode
from stream.source import BatchSource, ListDeadLetters, ListSource

P = Pseudonymizer(b"unit-erasure-key-0123456789", key_id="k1",
                  old_keys={"k0": b"retired-key-0123456789"})


@pytest.fixture()
def reg():
    return Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-unit-key"))


def _publish(reg, users=("alice", "bob"), n=40, every=20):
    raw = [encode(Event(f"e{k}", users[k % len(users)], f"i{k % 5}", "rating", 3.0,
                        1_700_000_000.0 + k)) for k in range(n)]
    LearnerWorker(ListSource(raw, batch_size=every), OnlineLearner("FMRegressor"),
                  ListDeadLetters(), publisher=RegistryPublisher(reg, "reco"),
                  publish_every_events=every, pseudonymizer=P).run()


def test_forget_clears_the_learner_and_the_gate_windows_and_audits_receipts_only(reg):
    _publish(reg)
    cp = Checkpoint.of(reg.load_object("reco", "latest")[1])
    assert any(P("alice") in w for ws in cp.quality.values() for w in ws)
    report = forget_user(reg, "reco", "alice", pseudonymizer=P, actor="t")
    assert report.older == [1, 2] and report.parent == 2 and report.version == 3
    blob = reg.read_blob("reco", 3)
    assert all(uid.encode() not in blob for uid in P.pseudonyms("alice"))
    assert P("bob").encode() in blob
    cp = Checkpoint.of(reg.load_object("reco", 3)[1])
    assert not any(P("alice") in w for ws in cp.quality.values() for w in ws)
    assert reg.get("reco", 3).tags["erasure"] == "true"
    [(_, row)] = reg.audit("reco", AUDIT_KIND)
    assert row["receipts"] == ",".join(receipt(u) for u in P.pseudonyms("alice"))
    assert "alice" not in str(row) and P("alice") not in str(row) and row["key_id"] == "k1"


def test_purge_keeps_aliased_versions_unless_asked_and_refuses_a_dirty_latest(reg):
    _publish(reg, n=60)
    with pytest.raises(ModelStoreError, match="run forget first"):
        purge_user(reg, "reco", "alice", pseudonymizer=P)
    reg.promote("reco", 1)
    forget_user(reg, "reco", "alice", pseudonymizer=P)
    report = purge_user(reg, "reco", "alice", pseudonymizer=P)
    assert report.deleted == [2, 3] and report.aliased == {1: ["production"]}
    assert purge_user(reg, "reco", "alice", pseudonymizer=P, move_aliases=True).deleted == [1]
    assert [v.number for v in reg.versions("reco")] == [4]
    assert reg.aliases("reco") == {"latest": 4, "production": 4}


def test_purge_before_and_a_learner_that_cannot_forget(reg):
    _publish(reg, n=60)
    assert purge_before(reg, "reco", 3).deleted == [1, 2]
    reg.publish_object("plain", {"not": "a learner"})
    with pytest.raises(TypeError, match="cannot forget"):
        forget_user(reg, "plain", "alice")


def test_without_a_pseudonymizer_the_raw_id_is_erased(reg):
    learner = OnlineLearner()
    learner.learn_one(Event("e", "carol", "i", "rating", 4.0, 1.0))
    reg.publish_object("reco", Checkpoint(learner))
    report = forget_user(reg, "reco", "carol")
    assert b"carol" not in reg.read_blob("reco", report.version)
    assert b"carol" in pickle.dumps(learner)



def test_the_worker_erases_on_a_request_and_publishes_a_version_covering_it(reg):
    from consumers.erasure import encode_request
    from stream.source import Record

    def ev(k, user):
        return Record(encode(Event(f"e{k}", user, "i1", "rating", 4.0, 1_700_000_000.0 + k)),
                      "events", 0, k)

    batches = [[ev(0, "alice"), ev(1, "bob"), ev(2, "alice")],
               [Record(encode_request(P("alice")), "events.erasures", 0, 0),
                Record(b"junk", "events.erasures", 0, 1), ev(3, "bob")],
               [ev(4, "bob")]]
    dlq = ListDeadLetters()
    worker = LearnerWorker(BatchSource(batches), OnlineLearner(), dlq,
                           publisher=RegistryPublisher(reg, "reco"), publish_every_events=1000,
                           pseudonymizer=P, erasure_topic="events.erasures")
    stats = worker.run()
    assert stats.erasures == 1 and stats.learned == 5 and len(dlq.items) == 1
    assert stats.versions == [1, 2]  # 1: at the end of the erasure's batch, 2: the final one
    version = reg.get("reco", 1)
    assert version.offsets == {"events:0": 4, "events.erasures:0": 2}
    blob = reg.read_blob("reco", 1)
    assert P("alice").encode() not in blob and P("bob").encode() in blob


def test_erasure_reaches_the_input_drift_window_attached_to_the_learner():
    from collections import Counter

    from monitoring.input_drift import InputDriftWatch

    learner = OnlineLearner()
    watch = InputDriftWatch.for_learner(learner, "reco")
    raw = [encode(Event(f"e{k}", ["alice", "bob", "carol"][k % 3], "i1", "rating", 4.0,
                        1_700_000_000.0 + k)) for k in range(30)]
    LearnerWorker(ListSource(raw), learner, ListDeadLetters(), pseudonymizer=P,
                  input_drift=watch).run()
    activity = sorted(Counter(watch.drift._users).values())
    assert P("alice").encode() in pickle.dumps(learner)
    assert learner.forget_user(P("alice")) > 0 and learner.forget_user(P("bob")) > 0
    assert P("alice").encode() not in pickle.dumps(learner)
    assert P("bob").encode() not in pickle.dumps(learner)
    assert sorted(Counter(watch.drift._users).values()) == activity  # figures unchanged
