import os
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.worker import LearnerWorker
from learning.online import OnlineLearner
from stream.pseudonym import Pseudonymizer, PseudonymKeyError
from stream.schema import Event, encode
from stream.source import ListDeadLetters, ListSource

KEY = b"unit-test-pseudonym-key-0123456789"
ids = st.text(min_size=1, max_size=40)
keys = st.binary(min_size=16, max_size=64)


@given(ids, keys)
def test_deterministic_and_idempotent(user, key):
    a, b = Pseudonymizer(key, key_id="k"), Pseudonymizer(key, key_id="k")
    assert a(user) == b(user)
    assert a(a(user)) == a(user)


@given(ids, keys, keys)
def test_key_dependent(user, k1, k2):
    if k1 != k2:
        assert Pseudonymizer(k1, key_id="k")(user) != Pseudonymizer(k2, key_id="k")(user)


@given(ids)
def test_no_raw_id_in_output(user):
    out = Pseudonymizer(KEY, key_id="k1")(user)
    prefix, kid, digest = out.split(":")
    assert (prefix, kid, len(digest)) == ("p1", "k1", 32)
    assert set(digest) <= set("0123456789abcdef")
    if len(user) > 3 or not set(user) <= set("0123456789abcdefpk1:"):
        assert user not in out


@given(st.lists(ids, min_size=2, max_size=20, unique=True))
def test_distinct_users_stay_distinct(users):
    p = Pseudonymizer(KEY)
    assert len({p(u) for u in users}) == len(users)


def test_key_rules_and_repr_hides_the_key():
    with pytest.raises(PseudonymKeyError):
        Pseudonymizer(b"short")
    with pytest.raises(PseudonymKeyError):
        Pseudonymizer(KEY, key_id="bad id")
    assert KEY.decode() not in repr(Pseudonymizer(KEY))


def test_from_env_key_file_and_retired_keys(tmp_path):
    key_file, old = tmp_path / "current.key", tmp_path / "k0.key"
    key_file.write_bytes(KEY + b"\n")
    old.write_bytes(b"an-old-retired-key-abcdef")
    p = Pseudonymizer.from_env({"LIFELONG_PSEUDONYM_KEY_FILE": str(key_file),
                                "LIFELONG_PSEUDONYM_OLD_KEY_FILES": str(old)})
    assert p is not None and p("u") == Pseudonymizer(KEY)("u")
    names = p.pseudonyms("u")
    assert names[0] == p("u") and names[1].startswith("p1:k0:") and len(names) == 2
    text = Pseudonymizer.from_env({"LIFELONG_PSEUDONYM_KEY": KEY.decode(),
                                   "LIFELONG_PSEUDONYM_KEY_ID": "v2"})
    assert text is not None and text("u").startswith("p1:v2:")
    with pytest.raises(PseudonymKeyError):
        Pseudonymizer.from_env({"LIFELONG_PSEUDONYM_KEY_FILE": os.fspath(tmp_path / "none")})


def test_worker_learns_pseudonyms_and_dead_letter_reasons_hold_no_raw_id():
    p = Pseudonymizer(KEY, key_id="k1")
    raw = [encode(Event(f"e{k}", "alice-raw", f"i{k % 3}", "rating", 4.0, float(k)))
           for k in range(5)]
    raw.append(encode(Event("bad", "alice-raw", "i1", "rating", 99.0, 6.0)))  # off the scale
    dlq, learner = ListDeadLetters(), OnlineLearner()
    worker = LearnerWorker(ListSource(raw), learner, dlq, pseudonymizer=p)
    stats = worker.run()
    assert stats.learned == 5 and stats.quarantined == 1
    users = learner.model._model.u_biases
    assert p("alice-raw") in users and "alice-raw" not in users
    assert all("alice-raw" not in reason for _, reason in dlq.items)
    assert b"alice-raw" not in pickle.dumps(worker.checkpoint())  # model, dedup, gate state
