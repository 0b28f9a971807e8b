from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path

import msgspec
import pytest

from model_store import IntegrityError, ModelVersion, SigningKeyError, UnsignedModelError
from model_store.codec import describe, dump, load
from model_store.signing import (
    ENV_KEY,
    ENV_KEY_FILE,
    SIGNED_FIELDS,
    Signer,
    check_signature,
    is_legacy,
)

KEY = b"unit-signing-key-0123456789"


def test_key_from_file_strips_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(KEY + b"\n")
    assert Signer.from_env({ENV_KEY_FILE: str(path)}).key_id == Signer(KEY).key_id
    assert Signer.from_env({ENV_KEY: KEY.decode()}).key_id == Signer(KEY).key_id


@pytest.mark.parametrize("environ, match", [
    ({ENV_KEY: "short"}, "at least 16"),
    ({ENV_KEY: KEY.decode(), ENV_KEY_FILE: "/x"}, "only one"),
    ({ENV_KEY_FILE: "/nonexistent/key"}, ENV_KEY_FILE),
])
def test_bad_key_configuration_is_named(environ: dict[str, str], match: str) -> None:
    with pytest.raises(SigningKeyError, match=match):
        Signer.from_env(environ)


def test_signature_binds_format_and_digest() -> None:
    s = Signer(KEY)
    sig = s.sign("river-pickle", "aa")
    assert s.verify("river-pickle", "aa", sig)
    assert not s.verify("river-pickle", "ab", sig)
    assert not s.verify("safetensors", "aa", sig)
    assert not s.verify("river-pickle", "aa", sig.replace("hmac-sha256", "md5"))
    assert not Signer(b"x" * 16).verify("river-pickle", "aa", sig)


class Boom:
    """Unpickling this would run code: it must never happen for unverified bytes."""

    ran = False

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Boom._trigger, ())

    @staticmethod
    def _trigger() -> None:
        Boom.ran = True


def test_tampered_pickle_is_never_unpickled() -> None:
    signer = Signer(KEY)
    good = dump({"w": 1})
    version = describe("reco", 3, good, signer)
    evil = pickle.dumps(Boom())
    with pytest.raises(IntegrityError, match='model "reco" version 3: sha256 mismatch'):
        load(evil, version, signer)
    forged = ModelVersion(model="reco", number=3, format="river-pickle",
                          sha256=hashlib.sha256(evil).hexdigest(), size=len(evil), created=0.0,
                          signature=version.signature)
    with pytest.raises(IntegrityError, match="bad signature"):
        load(evil, forged, signer)
    with pytest.raises(UnsignedModelError):
        load(evil, describe("reco", 3, evil, None), signer)
    with pytest.raises(IntegrityError, match="signed with key"):
        load(evil, describe("reco", 3, evil, Signer(b"attacker-key-0123456789")), signer)
    with pytest.raises(SigningKeyError, match=ENV_KEY):
        load(evil, describe("reco", 3, evil, Signer(b"attacker-key-0123456789")), None)
    assert not Boom.ran
    assert load(good, version, signer) == {"w": 1}


def test_unsigned_raw_formats_pass_unless_required() -> None:
    v = ModelVersion(model="reco", number=1, format="safetensors", sha256="aa", size=1,
                     created=0.0)
    check_signature(v, None)
    check_signature(v, Signer(KEY))
    with pytest.raises(UnsignedModelError):
        check_signature(v, Signer(KEY), require=True)


# -- v2: the signature covers the metadata the learner acts on ------------------------------
_V = ModelVersion(model="reco", number=4, format="river-pickle", sha256="aa" * 32, size=10,
                  created=1.5, parent=3, chunks=1, chunk_size=4, offsets={"events:0": 1200},
                  metrics={"rmse": 0.9}, tags={"learner": "online"},
                  extra={"events_seen": 1200, "dedup_sha256": "bb" * 32})
_CHANGED = {"model": "other", "number": 5, "format": "safetensors", "sha256": "ab" * 32,
            "size": 11, "created": 2.5, "parent": None, "chunks": 2, "chunk_size": 8,
            "offsets": {"events:0": 0}, "metrics": {"rmse": 0.1}, "tags": {"learner": "x"},
            "extra": {"events_seen": 1200, "dedup_sha256": "cc" * 32}}


def _signed() -> ModelVersion:
    signer = Signer(KEY)
    return msgspec.structs.replace(_V, signature=signer.sign_version(_V))


def test_every_field_the_learner_acts_on_is_covered() -> None:
    assert set(_CHANGED) == set(SIGNED_FIELDS)
    signed = _signed()
    assert Signer(KEY).verify_version(signed)
    for name, value in _CHANGED.items():
        tampered = msgspec.structs.replace(signed, **{name: value})
        assert not Signer(KEY).verify_version(tampered), name
        with pytest.raises(IntegrityError, match="bad signature"):
            check_signature(tampered, Signer(KEY))


def test_the_alias_stamp_is_not_covered_so_promotions_keep_versions_valid() -> None:
    assert Signer(KEY).verify_version(msgspec.structs.replace(_signed(), announced=99.0))


def test_fields_round_trip_through_the_hash_and_still_verify() -> None:
    signed = _signed()
    back = ModelVersion.from_fields("reco", 4, signed.to_fields())
    assert Signer(KEY).verify_version(back)


def test_old_style_signatures_load_with_a_warning_and_strict_mode_refuses_them(caplog) -> None:
    signer = Signer(KEY)
    old = msgspec.structs.replace(_V, signature=signer.sign(_V.format, _V.sha256))
    assert is_legacy(old.signature) and not is_legacy(_signed().signature)
    with caplog.at_level(logging.WARNING, logger="model_store.signing"):
        check_signature(old, signer)
    assert "signed the old way" in caplog.text
    with pytest.raises(IntegrityError, match="old way"):
        check_signature(old, signer, legacy=False)
    forged = msgspec.structs.replace(old, sha256="ff" * 32)
    with pytest.raises(IntegrityError, match="bad signature"):
        check_signature(forged, signer)
