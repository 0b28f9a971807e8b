from __future__ import annotations

from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from model_store import InvalidNameError, MemoryBackend, Registry, Signer
from model_store.signing import ENV_KEY
from model_store.subscriber import Subscriber
from tests.unit.model_store.conformance import KEY
from tests.unit.model_store.helpers import Const
from tests.unit.model_store.subscriber_conformance import eventually, failures


class FlakyBackend(MemoryBackend):
    """Loses its "connection" while ``down`` is set."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise redis.ConnectionError("connection refused (simulated)")

    def read_events(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return super().read_events(*args, **kwargs)

    def read_meta(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return super().read_meta(*args, **kwargs)

    def get_alias(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return super().get_alias(*args, **kwargs)


def test_outage_is_counted_and_the_last_model_keeps_serving() -> None:
    backend = FlakyBackend()
    reg = Registry(backend, signer=Signer(KEY))
    metrics = CollectorRegistry()
    reg.publish_object("reco", Const(1.0))
    with Subscriber(reg, "reco", poll_interval=0.05, metrics_registry=metrics) as sub:
        backend.down = True
        assert eventually(lambda: failures(metrics, "reco", "connection") >= 2)
        assert sub.predict("u", "i") == 1.0
        backend.down = False
        reg.publish_object("reco", Const(2.0))
        assert sub.wait_for_version(2, timeout=5) and sub.predict("u", "i") == 2.0


def test_start_while_down_then_recover() -> None:
    backend = FlakyBackend()
    reg = Registry(backend, signer=Signer(KEY))
    reg.publish_object("reco", Const(1.0))
    backend.down = True
    with Subscriber(reg, "reco", poll_interval=0.05) as sub:
        assert sub.current is None
        backend.down = False
        assert sub.wait_for_version(1, timeout=5)


def test_from_url_reads_the_key_from_the_environment() -> None:
    reg = Registry.from_url("memory://", environ={ENV_KEY: KEY.decode()})
    assert reg.signer is not None and reg.signer.key_id == Signer(KEY).key_id
    assert Registry.from_url("memory://", environ={}).signer is None
    with pytest.raises(InvalidNameError, match="unsupported model store URL scheme 'http'"):
        Registry.from_url("http://user:secret@host")


def test_bad_subscriber_arguments() -> None:
    reg = Registry(MemoryBackend())
    with pytest.raises(InvalidNameError):
        Subscriber(reg, "reco", canary_share=1.5)
    with pytest.raises(InvalidNameError):
        Subscriber(reg, "reco", alias="42")
