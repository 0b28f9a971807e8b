"""One suite every model store backend must pass (memory in unit tests, Redis in integration).

A backend's test class subclasses :class:`RegistryConformance` and provides the ``backend``
fixture plus ``tamper_chunk`` / ``tamper_meta`` (direct writes that bypass the registry).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from model_store import (
    AliasNotFoundError,
    IntegrityError,
    InvalidNameError,
    ModelVersion,
    Registry,
    Signer,
    SigningKeyError,
    UnsignedModelError,
    VersionNotFoundError,
)
from model_store.backend import Backend

KEY = b"conformance-key-0123456789abcdef"
T0 = 1_700_000_000.0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class BackendFixtures:
    """Fixtures every suite needs; subclasses provide ``backend`` and the tamper hooks."""

    # --- provided by subclasses -----------------------------------------------------
    @pytest.fixture()
    def backend(self) -> Iterator[Backend]:
        raise NotImplementedError

    def tamper_chunk(self, backend: Any, model: str, number: int, index: int,
                     data: bytes) -> None:
        raise NotImplementedError

    def tamper_meta(self, backend: Any, model: str, number: int, field: str,
                    value: str) -> None:
        raise NotImplementedError

    # --- shared fixtures ------------------------------------------------------------
    @pytest.fixture()
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture()
    def signer(self) -> Signer:
        return Signer(KEY)

    @pytest.fixture()
    def registry(self, backend: Backend, signer: Signer, clock: FakeClock) -> Registry:
        return Registry(backend, signer=signer, chunk_size=4, clock=clock)


class RegistryConformance(BackendFixtures):
    """Behaviour shared by every backend, through the public Registry API."""

    # --- versions -------------------------------------------------------------------
    @pytest.mark.parametrize("blob", [b"", b"abc", b"abcd", b"abcdefghij", bytes(range(256)) * 9])
    def test_publish_then_read_round_trips(self, registry: Registry, blob: bytes) -> None:
        v = registry.publish("reco", blob, format="safetensors")
        assert v.number == 1 and v.size == len(blob) and v.chunks == -(-len(blob) // 4)
        assert registry.get("reco", 1) == v
        assert registry.read_blob("reco", 1) == blob
        assert b"".join(registry.iter_blob("reco", "latest")) == blob

    def test_accepts_bytearray_and_memoryview(self, registry: Registry) -> None:
        registry.publish("reco", bytearray(b"0123456789"), format="raw")
        registry.publish("reco", memoryview(b"xyz0123456789")[3:], format="raw")
        assert registry.read_blob("reco", 1) == registry.read_blob("reco", 2) == b"0123456789"

    def test_metadata_round_trips(self, registry: Registry, clock: FakeClock) -> None:
        registry.publish("reco", b"p", format="raw")
        meta = {"offsets": {"events:0": 120, "events:1": 7}, "metrics": {"rmse": 0.95},
                "tags": {"learner": "river"}, "events_seen": 127}
        v = registry.publish("reco", b"child", format="raw", metadata=meta, parent=1)
        got = registry.get("reco", v.number)
        assert got.offsets == meta["offsets"] and got.metrics == {"rmse": 0.95}
        assert got.tags == {"learner": "river"} and got.extra == {"events_seen": 127}
        assert got.parent == 1 and got.created == clock.now and got.signature
        assert got.created_at.tzinfo is not None

    def test_numbers_grow_latest_moves_and_models_listed(self, registry: Registry) -> None:
        assert registry.latest("reco") is None and registry.versions("reco") == []
        numbers = [registry.publish("reco", b"x%d" % i, format="raw").number for i in range(5)]
        registry.publish("other", b"y", format="raw")
        assert numbers == [1, 2, 3, 4, 5]
        assert [v.number for v in registry.versions("reco")] == numbers
        assert registry.latest("reco").number == 5
        assert registry.models() == ["other", "reco"]

    def test_missing_version_and_alias_are_named(self, registry: Registry) -> None:
        registry.publish("reco", b"x", format="raw")
        with pytest.raises(VersionNotFoundError, match='model "reco" version 7 not found'):
            registry.get("reco", 7)
        with pytest.raises(AliasNotFoundError, match='model "reco" alias "production"'):
            registry.get("reco", "production")
        assert registry.get("reco", "1").number == 1

    @pytest.mark.parametrize("name", ["", "a:b", "a b", "x" * 129, "-lead"])
    def test_bad_names_are_refused(self, registry: Registry, name: str) -> None:
        with pytest.raises(InvalidNameError):
            registry.publish(name, b"x", format="raw")

    def test_bad_arguments_are_refused(self, registry: Registry) -> None:
        registry.publish("reco", b"x", format="raw")
        with pytest.raises(InvalidNameError):
            registry.set_alias("reco", "123", 1)
        with pytest.raises(InvalidNameError):
            registry.get("reco", 0)
        with pytest.raises(InvalidNameError):
            registry.publish("reco", b"x", format="raw", metadata={"extra": object()})

    def test_concurrent_publishers_get_distinct_numbers(self, registry: Registry) -> None:
        got: list[int] = []
        lock = threading.Lock()

        def work(worker: int) -> None:
            for i in range(10):
                n = registry.publish("reco", b"w%d-%d" % (worker, i), format="raw").number
                with lock:
                    got.append(n)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(got) == list(range(1, 41))
        assert registry.get_alias("reco", "latest") == 40

    # --- integrity and signing ------------------------------------------------------
    def test_tampered_chunk_is_refused(self, registry: Registry, backend: Backend) -> None:
        registry.publish("reco", b"0123456789", format="raw")
        registry.publish_object("reco", {"w": 1})
        self.tamper_chunk(backend, "reco", 1, 1, b"XXXX")
        with pytest.raises(IntegrityError, match='model "reco" version 1: sha256 mismatch'):
            registry.read_blob("reco", 1)
        it = registry.iter_blob("reco", 1)
        assert next(it) == b"0123"
        with pytest.raises(IntegrityError):
            list(it)
        self.tamper_chunk(backend, "reco", 2, 0, b"\x80\x05N.")
        with pytest.raises(IntegrityError, match='model "reco" version 2'):
            registry.load_object("reco", 2)

    def test_altered_metadata_breaks_the_signature(self, registry: Registry,
                                                   backend: Backend) -> None:
        blob = pickle.dumps({"w": 1})
        registry.publish_object("reco", {"w": 1})
        evil = b"\x80\x05N."
        self.tamper_chunk(backend, "reco", 1, 0, evil)
        self.tamper_meta(backend, "reco", 1, "sha256", hashlib.sha256(evil).hexdigest())
        self.tamper_meta(backend, "reco", 1, "size", "4")
        self.tamper_meta(backend, "reco", 1, "chunks", "1")
        with pytest.raises(IntegrityError, match="bad signature"):
            registry.load_object("reco", 1)
        assert blob  # the original was a real pickle

    def test_unsigned_pickle_is_refused(self, registry: Registry, backend: Backend) -> None:
        registry.publish_object("reco", {"w": 1})
        self.tamper_meta(backend, "reco", 1, "signature", "")
        with pytest.raises(UnsignedModelError, match=r'model "reco" version 1 .* not signed'):
            registry.load_object("reco", 1)
        with pytest.raises(UnsignedModelError):
            registry.read_blob("reco", 1)

    def test_wrong_key_is_refused(self, registry: Registry, backend: Backend,
                                  clock: FakeClock) -> None:
        registry.publish_object("reco", {"w": 1})
        other = Registry(backend, signer=Signer(b"another-key-0123456789"), clock=clock)
        with pytest.raises(IntegrityError, match="signed with key"):
            other.load_object("reco", 1)
        keyless = Registry(backend, clock=clock)
        with pytest.raises(SigningKeyError, match="LIFELONG_SIGNING_KEY"):
            keyless.load_object("reco", 1)
        with pytest.raises(SigningKeyError, match="LIFELONG_SIGNING_KEY"):
            keyless.publish_object("reco", {"w": 2})
        assert registry.load_object("reco", 1)[1] == {"w": 1}

    def test_signed_non_pickle_verified_when_key_present(self, registry: Registry,
                                                         backend: Backend,
                                                         clock: FakeClock) -> None:
        v = registry.publish("reco", b"weights", format="safetensors")
        assert v.signature.startswith("hmac-sha256-v2:")
        assert Registry(backend, clock=clock).read_blob("reco", 1) == b"weights"
        strict = Registry(backend, clock=clock, require_signatures=True)
        with pytest.raises(SigningKeyError):
            strict.read_blob("reco", 1)

    def test_load_object_round_trips(self, registry: Registry) -> None:
        v = registry.publish_object("reco", {"w": [1.0, 2.0]}, metadata={"events_seen": 3})
        got, obj = registry.load_object("reco", "latest")
        assert got == v and obj == {"w": [1.0, 2.0]} and v.format == "river-pickle"
        assert registry.load("reco", 1)[1] == obj

    # --- aliases --------------------------------------------------------------------
    def test_aliases_move_with_history(self, registry: Registry, clock: FakeClock) -> None:
        for i in range(3):
            registry.publish("reco", b"v%d" % i, format="raw")
        registry.promote("reco", 1, actor="alice")
        clock.advance(5)
        change = registry.set_alias("reco", "production", 2, actor="bob")
        assert (change.previous, change.to, change.actor) == (1, 2, "bob")
        assert registry.get_alias("reco", "production") == 2
        assert registry.get("reco", "production").number == 2
        assert registry.aliases("reco") == {"latest": 3, "production": 2}
        hist = registry.alias_history("reco", "production")
        assert [(h.previous, h.to, h.actor, h.ts) for h in hist] == [
            (1, 2, "bob", T0 + 5), (None, 1, "alice", T0)]
        with pytest.raises(VersionNotFoundError):
            registry.set_alias("reco", "production", 9)
        assert registry.get_alias("reco", "nope") is None

    def test_rollback_walks_back_through_history(self, registry: Registry) -> None:
        for i in range(4):
            registry.publish("reco", b"v%d" % i, format="raw")
        for n in (1, 2, 3):
            registry.promote("reco", n)
        assert registry.rollback("reco", actor="ops").to == 2
        assert registry.rollback("reco").to == 1
        with pytest.raises(AliasNotFoundError, match="no earlier version"):
            registry.rollback("reco")
        registry.promote("reco", 4)
        assert registry.rollback("reco").to == 1
        assert registry.alias_history("reco", "production")[0].kind == "rollback"
        with pytest.raises(AliasNotFoundError):
            registry.rollback("reco", "candidate")

    # --- retention ------------------------------------------------------------------
    def test_gc_keeps_last_aliased_and_fresh(self, registry: Registry,
                                             clock: FakeClock) -> None:
        for i in range(6):
            registry.publish("reco", b"v%d" % i, format="raw")
            clock.advance(1)
        registry.promote("reco", 1)
        registry.promote("reco", 2)  # 1 is the rollback target of production
        assert registry.gc("reco", keep_last=2) == []  # all within 60 s grace
        clock.advance(120)
        assert registry.gc("reco", keep_last=2) == [3, 4]
        assert [v.number for v in registry.versions("reco")] == [1, 2, 5, 6]
        with pytest.raises(VersionNotFoundError):
            registry.read_blob("reco", 3)
        registry.publish("reco", b"v7", format="raw")
        for n in (5, 6, 7):  # announcing 5 restarts its grace; 6 becomes a rollback target
            registry.set_alias("reco", "canary", n)
        assert registry.gc("reco", keep_last=0) == []
        clock.advance(61)
        assert registry.gc("reco", keep_last=0) == [5]
        assert registry.publish("reco", b"v8", format="raw").number == 8

    # --- notices --------------------------------------------------------------------
    def test_publish_and_alias_moves_are_logged(self, registry: Registry,
                                                backend: Backend) -> None:
        assert backend.head("reco", "latest") == (None, "0-0")
        registry.publish("reco", b"a", format="raw")
        registry.promote("reco", 1, actor="ops")
        events = backend.read_events("reco", "0-0", 10)
        assert [(e.kind, e.version, e.alias, e.actor) for _, e in events] == [
            ("publish", 1, "latest", ""), ("alias", 1, "production", "ops")]
        assert backend.read_events("reco", events[0][0], 10) == events[1:]
        assert backend.head("reco", "production") == (1, events[-1][0])

    def test_listener_wakes_on_publish(self, registry: Registry, backend: Backend) -> None:
        listener = backend.listen("reco")
        try:
            timer = threading.Timer(0.2, registry.publish, ("reco", b"a"), {"format": "raw"})
            timer.start()
            start = time.monotonic()
            woke = False
            while not woke and time.monotonic() - start < 5:
                woke = listener.wait(0.5)
            timer.join()
            assert woke
        finally:
            listener.close()

    def test_follow_replays_the_log_then_stops_at_the_timeout(self, registry: Registry) -> None:
        registry.publish("reco", b"a", format="raw")
        registry.promote("reco", 1, actor="ci")
        seen = list(registry.follow("reco", after="0-0", timeout=0.2))
        assert [(e.kind, e.version, e.alias, e.actor) for _, e in seen] == [
            ("publish", 1, "latest", ""), ("alias", 1, "production", "ci")]
        assert list(registry.follow("reco", after=seen[0][0], timeout=0.1)) == seen[1:]
        start = time.monotonic()
        assert list(registry.follow("reco", timeout=0.3)) == []  # from the end: nothing new
        assert 0.25 < time.monotonic() - start < 3

    def test_follow_sees_events_from_another_thread_until_stopped(
        self, registry: Registry
    ) -> None:
        registry.publish("reco", b"old", format="raw")  # before following: not seen
        stop = threading.Event()

        def later() -> None:
            time.sleep(0.3)
            registry.publish("reco", b"new", format="raw")
            registry.set_alias("reco", "candidate", 2, actor="bot")
            registry.publish("other", b"x", format="raw")  # another model: not seen

        thread = threading.Thread(target=later)
        thread.start()
        seen = []
        for _, event in registry.follow("reco", timeout=10, stop=stop):
            seen.append((event.kind, event.version, event.alias, event.previous))
            if len(seen) == 2:
                stop.set()
        thread.join()
        assert seen == [("publish", 2, "latest", 1), ("alias", 2, "candidate", None)]

    def test_alarm_is_logged_followed_and_moves_nothing(self, registry: Registry,
                                                         backend: Backend,
                                                         clock: FakeClock) -> None:
        before = registry.alarm("reco", detail={"events": 3})  # no version yet: version 0
        assert (before.kind, before.version, before.alias, before.detail) == (
            "alarm", 0, "", {"events": 3, "alarm": "drift"})
        registry.publish("reco", b"a", format="raw")
        registry.promote("reco", 1)
        listener = backend.listen("reco")
        try:
            timer = threading.Timer(0.2, registry.alarm, ("reco", "quality"),
                                    {"detail": {"rmse": 1.5}, "actor": "online"})
            timer.start()
            deadline = time.monotonic() + 5
            woke = False
            while not woke and time.monotonic() < deadline:
                woke = listener.wait(0.5)
            timer.join()
            assert woke
        finally:
            listener.close()
        seen = [e for _, e in registry.follow("reco", after="0-0", timeout=0.2)]
        assert [(e.kind, e.version, e.alias) for e in seen] == [
            ("alarm", 0, ""), ("publish", 1, "latest"), ("alias", 1, "production"),
            ("alarm", 1, "")]
        last = seen[-1]
        assert last.detail == {"rmse": 1.5, "alarm": "quality"} and last.actor == "online"
        assert last.ts == clock.now
        assert registry.aliases("reco") == {"latest": 1, "production": 1}
        assert [v.number for v in registry.versions("reco")] == [1]
        stop = threading.Event()
        threading.Timer(0.2, registry.alarm, ("reco",), {"detail": {"events": 7}}).start()
        for _, event in registry.follow("reco", timeout=10, stop=stop):
            assert (event.kind, event.detail) == ("alarm", {"events": 7, "alarm": "drift"})
            stop.set()
        with pytest.raises(InvalidNameError):
            registry.alarm("reco", "bad kind")
        with pytest.raises(InvalidNameError):
            registry.alarm("reco", detail={"x": object()})

    def test_follow_rejects_bad_arguments(self, registry: Registry) -> None:
        with pytest.raises(InvalidNameError):
            next(registry.follow("a:b", timeout=0))
        with pytest.raises(InvalidNameError):
            next(registry.follow("reco", timeout=-1))

    def test_gc_dry_run_deletes_nothing_and_predicts_the_real_run(
        self, registry: Registry, clock: FakeClock
    ) -> None:
        for i in range(3):
            registry.publish("reco", b"old%d" % i, format="raw")
        clock.advance(120)
        for i in range(3):
            registry.publish("reco", b"new%d" % i, format="raw")  # 4, 5, 6: fresh
        registry.promote("reco", 1)  # aliased; 5 is latest's rollback target
        assert registry.gc("reco", keep_last=0, dry_run=True) == [2, 3]
        assert [v.number for v in registry.versions("reco")] == [1, 2, 3, 4, 5, 6]
        assert registry.gc("reco", keep_last=0) == [2, 3]
        clock.advance(61)
        assert registry.gc("reco", keep_last=1, dry_run=True) == [4]
        assert registry.gc("reco", keep_last=1) == [4]
        assert registry.gc("reco", keep_last=0, dry_run=True) == []

    def test_version_struct_is_frozen(self, registry: Registry) -> None:
        v = registry.publish("reco", b"a", format="raw")
        assert isinstance(v, ModelVersion)
        with pytest.raises(AttributeError):
            v.number = 2  # type: ignore[misc]
