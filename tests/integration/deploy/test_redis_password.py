"""The local launcher starts Redis with a password; the learner's settings authenticate."""

from __future__ import annotations

import socket

import pytest
import redis

from deploy.base import LOOPBACK
from deploy.local import ensure, stop_local
from deploy.redis import RedisLauncher
from lifelong.config import Settings
from lifelong.wiring import open_registry
from model_store.signing import Signer

pytestmark = pytest.mark.integration
PASSWORD = "p@ss/word:1"  # needs percent-encoding in a URL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@pytest.fixture()
def locked_redis(tmp_path):
    port = _free_port()
    launcher = RedisLauncher(tmp_path, {"LIFELONG_REDIS_PORT": str(port),
                                        "LIFELONG_REDIS_PASSWORD": PASSWORD})
    endpoint = ensure(launcher, tmp_path)
    yield port, endpoint
    stop_local(tmp_path, "redis")


def test_the_launcher_requires_the_password_and_hands_out_an_address_with_it(locked_redis,
                                                                               tmp_path):
    port, endpoint = locked_redis
    assert PASSWORD not in endpoint.address and "p%40ss%2Fword%3A1" in endpoint.address
    assert oct((tmp_path / "services/redis/redis.conf").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=LOOPBACK, port=port).ping()
    assert redis.Redis.from_url(endpoint.address).ping()

    # the password given apart from the URL (REDIS_PASSWORD), as a deployment would
    settings = Settings.from_env({"REDIS_URL": f"redis://{LOOPBACK}:{port}/0",
                                  "REDIS_PASSWORD": PASSWORD, "LIFELONG_PREFIX": "pw"})
    assert PASSWORD not in repr(settings)
    with open_registry(settings) as registry:
        registry.signer = Signer(b"0123456789abcdef-test-key")
        version = registry.publish_object("reco", {"w": 1}, metadata={"offsets": {"e:0": 1}})
        assert registry.load_object("reco", version.number)[1] == {"w": 1}
    with pytest.raises(redis.AuthenticationError), \
            open_registry(Settings.from_env({"REDIS_URL": f"redis://{LOOPBACK}:{port}/0",
                                             "REDIS_PASSWORD": "wrong"})) as registry:
        registry.models()
