"""Several publisher processes, and a subscriber whose connections are killed."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest
import redis
from prometheus_client import CollectorRegistry

from model_store import RedisBackend, Registry, Signer
from model_store.subscriber import Subscriber
from tests.unit.model_store.conformance import KEY
from tests.unit.model_store.helpers import Const

pytestmark = pytest.mark.integration


def _publish_many(url: str, prefix: str, worker: int, count: int) -> list[int]:
    reg = Registry.from_url(url, prefix=prefix, signer=Signer(KEY))
    try:
        return [reg.publish("reco", b"w%d-%d" % (worker, i), format="raw",
                            metadata={"tags": {"worker": str(worker)}}).number
                for i in range(count)]
    finally:
        reg.close()


def test_publishers_in_four_processes_get_distinct_growing_numbers(
    redis_url: str, prefix: str
) -> None:
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.starmap(_publish_many, [(redis_url, prefix, w, 25) for w in range(4)])
    for numbers in results:
        assert numbers == sorted(numbers) and len(set(numbers)) == 25
    assert sorted(n for numbers in results for n in numbers) == list(range(1, 101))
    reg = Registry.from_url(redis_url, prefix=prefix, signer=Signer(KEY))
    assert [v.number for v in reg.versions("reco")] == list(range(1, 101))
    assert reg.latest("reco").number == 100
    for v in reg.versions("reco")[::10]:
        worker = int(v.tags["worker"])
        assert reg.read_blob("reco", v.number).startswith(b"w%d-" % worker)
    events = reg.backend.read_events("reco", "0-0", 1000)
    assert sorted(e.version for _, e in events) == list(range(1, 101))
    moved = [e.version for _, e in events if e.alias == "latest"]
    assert moved == sorted(moved) and moved[-1] == 100  # latest only ever moves forward
    reg.close()


def _kill_clients(client: redis.Redis, name: str) -> list[str]:
    """Kill every connection called ``name``; return their flags (P = pub/sub)."""
    killed = []
    for info in client.client_list():
        if info.get("name") == name:
            client.client_kill_filter(_id=info["id"])
            killed.append(info["flags"])
    return killed


def _wait_for_pubsub(client: redis.Redis, name: str, timeout: float = 10.0) -> None:
    """Until a pub/sub connection called ``name`` is open (the subscriber reconnects it after
    a cut, and may catch up by polling first), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(i.get("name") == name and "P" in i["flags"] for i in client.client_list()):
            return
        time.sleep(0.05)


def test_subscriber_sees_every_version_in_order_across_forced_disconnects(
    redis_url: str, prefix: str, unique: str, client: redis.Redis
) -> None:
    name = f"sub-{unique}"
    publisher = Registry.from_url(redis_url, prefix=prefix, signer=Signer(KEY))
    reader = Registry.from_url(redis_url, prefix=prefix, signer=Signer(KEY), client_name=name)
    metrics = CollectorRegistry()
    seen: list[int] = []
    publisher.publish_object("reco", Const(1.0))
    sub = Subscriber(reader, "reco", poll_interval=0.2, coalesce=False, metrics_registry=metrics,
                     on_swap=lambda alias, v: seen.append(v.number))
    with sub:
        assert sub.wait_for_version(1, timeout=5)
        number = 1
        for _round in range(3):
            _wait_for_pubsub(client, name)
            flags = _kill_clients(client, name)
            assert any("P" in f for f in flags), flags  # the pub/sub connection was cut
            for _ in range(5):
                number = publisher.publish_object("reco", Const(float(number + 1))).number
            assert sub.wait_for_version(number, timeout=10)
            assert sub.predict("u", "i") == float(number)
    assert seen == list(range(1, number + 1))
    publisher.close()
    reader.close()


def test_backend_refuses_a_decoding_client(redis_url: str) -> None:
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisBackend(redis.Redis.from_url(redis_url, decode_responses=True))
