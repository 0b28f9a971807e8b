"""RetainLast: prune after publish, never fail a publish because the prune failed."""

from __future__ import annotations

import pytest

from consumers.retention import RetainLast
from lifelong.config import ConfigError, Settings
from model_store import Registry
from model_store.signing import Signer
from model_store.url import open_backend


class _Publisher:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def publish(self, learner: object, positions: dict[tuple[str, int], int]) -> int:
        return self.registry.publish_object("reco", {"learner": learner}).number


class _BrokenGc(Registry):
    def gc(self, *args: object, **kwargs: object) -> list[int]:
        raise ConnectionError("store went away")


def _registry(kind: type[Registry] = Registry) -> Registry:
    return kind.from_url("memory://", signer=Signer(b"0123456789abcdef-test-key"))


def test_a_failed_prune_keeps_the_publish() -> None:
    reg = _registry(_BrokenGc)
    pub = RetainLast(_Publisher(reg), reg, "reco", keep_last=1, grace_seconds=0,
                     every_seconds=0)
    assert [pub.publish(i, {}) for i in range(3)] == [1, 2, 3]
    assert len(reg.versions("reco")) == 3 and pub.deleted == 0


def test_prunes_at_most_once_every_every_seconds() -> None:
    reg = _registry()
    now = [0.0]
    pub = RetainLast(_Publisher(reg), reg, "reco", keep_last=1, grace_seconds=0,
                     every_seconds=10, clock=lambda: now[0])
    for _ in range(4):  # a prune after the first publish only (nothing to delete then)
        pub.publish(None, {})
    assert [v.number for v in reg.versions("reco")] == [1, 2, 3, 4]
    now[0] = 10.0
    pub.publish(None, {})
    assert [v.number for v in reg.versions("reco")] == [4, 5]  # 4: latest's rollback target
    assert pub.deleted == 3


def test_keep_last_must_be_positive() -> None:
    reg = _registry()
    with pytest.raises(ValueError, match="keep_last"):
        RetainLast(_Publisher(reg), reg, "reco", keep_last=0)


def test_keep_last_setting() -> None:
    assert Settings().keep_last == 20
    assert Settings.from_env({"LIFELONG_KEEP_LAST": "5"}).keep_last == 5
    assert Settings.from_env({}, keep_last=7).keep_last == 7
    with pytest.raises(ConfigError, match="LIFELONG_KEEP_LAST"):
        Settings.from_env({"LIFELONG_KEEP_LAST": "0"})


def test_versions_older_than_the_max_age_go_even_within_keep_last() -> None:
    now = [0.0]
    reg = Registry(open_backend("memory://"), signer=Signer(b"0123456789abcdef-test-key"),
                   clock=lambda: now[0])
    for t in (0.0, 10.0, 20.0, 30.0):
        now[0] = t
        reg.publish_object("reco", {"t": t})
    now[0] = 1000.0
    assert reg.gc("reco", keep_last=10, grace_seconds=0) == []  # by count: nothing to do
    assert reg.gc("reco", keep_last=10, grace_seconds=0, max_age_seconds=100,
                  dry_run=True) == [1, 2]
    # 4 is the newest (always kept), 3 the rollback target of latest
    assert reg.gc("reco", keep_last=10, grace_seconds=0, max_age_seconds=100) == [1, 2]
    assert [v.number for v in reg.versions("reco")] == [3, 4]
    with pytest.raises(ValueError, match="max_age_seconds"):
        reg.gc("reco", max_age_seconds=-1)


def test_retain_last_passes_the_max_age_and_the_setting_reads_it() -> None:
    now = [0.0]
    reg = Registry(open_backend("memory://"), signer=Signer(b"0123456789abcdef-test-key"),
                   clock=lambda: now[0])
    pub = RetainLast(_Publisher(reg), reg, "reco", keep_last=10, grace_seconds=0,
                     every_seconds=0, max_age_seconds=50)
    for t in (0.0, 10.0, 100.0, 200.0):
        now[0] = t
        pub.publish(None, {})
    assert [v.number for v in reg.versions("reco")] == [3, 4]
    assert Settings().version_max_age_seconds == 30 * 24 * 3600
    assert Settings.from_env(
        {"LIFELONG_VERSION_MAX_AGE_SECONDS": "0"}).version_max_age_seconds == 0
    with pytest.raises(ConfigError, match="LIFELONG_VERSION_MAX_AGE_SECONDS"):
        Settings.from_env({"LIFELONG_VERSION_MAX_AGE_SECONDS": "soon"})
