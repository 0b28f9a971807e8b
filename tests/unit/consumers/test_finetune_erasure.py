"""The fine-tune worker pseudonymises at ingestion and erases on the erasure topic."""

from consumers.deep_publisher import DeepPublisher
from consumers.erasure import encode_request, forget_deep_model
from consumers.finetune_worker import FineTuneWorker
from learning import DeepRecommender, FineTuner, ReplayBuffer
from model_store import Registry
from stream.pseudonym import Pseudonymizer
from stream.schema import Event, encode
from stream.source import BatchSource, Record

P = Pseudonymizer(b"unit-finetune-erasure-key-0123", key_id="k1")
TOPIC, ERASE = "events", "events.erasures"



def _events(start, n):
    users = ["alice", "bob", "carol", "dave"]
    return [Record(encode(Event(f"e{k}", users[k % 4], f"i{k % 7}", "rating",
                                float(k % 5 + 1), 1_700_000_000.0 + k)), TOPIC, 0, k)
            for k in range(start, start + n)]


def _worker(reg, batches):
    tuner = FineTuner(DeepRecommender(n_factors=4, clip=(1.0, 5.0)), device="cpu",
                      batch_size=32)
    buffer = ReplayBuffer(2000, recent_window=200)
    worker = FineTuneWorker(BatchSource(batches), tuner, buffer, DeepPublisher(reg, "deep"),
                            round_every_events=200, min_fresh=50, pseudonymizer=P,
                            erasure_topic=ERASE)
    return worker, tuner, buffer


def _scan(reg, model, needles):
    return [v.number for v in reg.versions(model)
            if any(n in reg.read_blob(model, v.number) for n in needles)]


def test_the_finetuner_holds_pseudonyms_only_and_erases_on_request():
    reg = Registry.from_url("memory://", signer=None)
    request = Record(encode_request(P("alice")), ERASE, 0, 0)
    batches = [_events(0, 200), _events(200, 200), [request], _events(400, 40)]
    worker, tuner, buffer = _worker(reg, batches)
    stats = worker.run(idle_timeout=0.5, poll_timeout=0.01)
    assert stats.erasures == 1
    raw = [b"alice", b"bob", b"carol", b"dave"]
    assert _scan(reg, "deep", raw) == []  # pseudonyms only, in every version
    alice = P("alice").encode()
    holding = _scan(reg, "deep", [alice])
    latest = reg.latest("deep").number
    production = reg.get_alias("deep", "production")
    assert holding and latest not in holding and production not in holding
    assert P("alice") not in tuner.recommender.users and P("bob") in tuner.recommender.users
    snap = buffer.snapshot()
    rows = set(snap["reservoir.user_row"].tolist() + snap["recent.user_row"].tolist())
    assert rows <= {int(r) for r in tuner.recommender.users.lookup(
        [P(u) for u in ("bob", "carol", "dave")], now=0.0, add=False)}
    assert reg.get("deep", holding[-1] + 1).tags.get("erasure") == "true"
    # the erased user predicts like a never-seen one in what production serves
    served = DeepPublisher(reg, "deep").production()[1]
    assert served.predict_one(P("alice"), "i1") == served.predict_one(P("zoe"), "i1")


def test_forget_deep_model_erases_the_served_versions_of_a_stopped_finetuner():
    reg = Registry.from_url("memory://", signer=None)
    worker, _, _ = _worker(reg, [_events(0, 200), _events(200, 200)])
    worker.run(idle_timeout=0.5, poll_timeout=0.01)
    assert _scan(reg, "deep", [P("carol").encode()])
    published = forget_deep_model(reg, "deep", "carol", pseudonymizer=P, actor="test")
    assert published and reg.latest("deep").number == published[-1]
    for alias in ("latest", "production"):
        number = reg.get_alias("deep", alias)
        assert P("carol").encode() not in reg.read_blob("deep", number)
    assert forget_deep_model(reg, "deep", "carol", pseudonymizer=P) == []  # nothing left


def test_replay_samples_older_than_the_retention_age_are_dropped_before_a_round():
    reg = Registry.from_url("memory://", signer=None)
    old = [Record(encode(Event(f"o{k}", "old-user", f"i{k % 5}", "rating", 3.0,
                               1_600_000_000.0 + k)), TOPIC, 0, k) for k in range(200)]
    new = [Record(encode(Event(f"n{k}", "new-user", f"i{k % 5}", "rating", 4.0,
                               1_700_000_000.0 + k)), TOPIC, 0, 200 + k) for k in range(200)]
    tuner = FineTuner(DeepRecommender(n_factors=4, clip=(1.0, 5.0)), device="cpu")
    buffer = ReplayBuffer(2000, recent_window=200)
    worker = FineTuneWorker(BatchSource([old, new]), tuner, buffer, DeepPublisher(reg, "deep"),
                            round_every_events=200, min_fresh=50,
                            replay_max_age=30 * 24 * 3600.0)
    worker.run(idle_timeout=0.5, poll_timeout=0.01)
    assert len(worker.stats.rounds) == 2
    snap = buffer.snapshot()
    ts = snap["reservoir.ts"].tolist() + snap["recent.ts"].tolist()
    assert ts and min(ts) >= 1_700_000_000.0  # the first round's samples went at round two
