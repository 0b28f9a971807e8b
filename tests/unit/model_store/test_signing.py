from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest

from model_store import IntegrityError, ModelVersion, SigningKeyError, UnsignedModelError
from model_store.codec import describe, dump, load
from model_store.signing import ENV_KEY, ENV_KEY_FILE, Signer, check_signature

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
