"""One-shot health probes, the same for every origin (env, testcontainers, local)."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from deploy.base import Health
from deploy.process import tcp_open

logger = logging.getLogger(__name__)


def split_hostport(address: str, default_port: int) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` too), falling back to ``default_port``.

    >>> split_hostport("127.0.0.1:39092", 9092)
    ('127.0.0.1', 39092)
    >>> split_hostport("broker", 9092)
    ('broker', 9092)
    """
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
        return address.strip(), default_port
    return host.strip("[]"), int(port)


def check_kafka(bootstrap: str, timeout_s: float = 5.0, **client_config: Any) -> Health:
    """Ask a Kafka cluster for its metadata with kafka-python's admin client.

    ``client_config``: more kafka-python options (SASL / TLS).
    """
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    if not servers:
        return Health(False, "no bootstrap servers given")
    if not any(tcp_open(*split_hostport(s, 9092), timeout=1.0) for s in servers):
        return Health(False, f"no broker accepts TCP connections at {bootstrap}")
    try:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=servers,
            client_id="lifelong-health",
            bootstrap_timeout_ms=int(timeout_s * 1000),
            request_timeout_ms=int(timeout_s * 1000),
            **client_config,
        )
    except Exception as exc:
        return Health(False, f"kafka-python could not bootstrap: {exc!r}")
    try:
        cluster = admin.describe_cluster()
        brokers = cluster.get("brokers") or []
        version = admin.get_broker_version_data(brokers[0]["broker_id"]).broker_version
        topics = admin.list_topics()
    except Exception as exc:
        return Health(False, f"metadata request failed: {exc!r}")
    finally:
        admin.close()
    shown = ".".join(str(v) for v in version)
    return Health(True, f"Kafka {shown}+ API, {len(brokers)} broker(s), {len(topics)} topic(s), "
                        f"cluster {cluster.get('cluster_id')}")


def check_redis(url: str, timeout_s: float = 2.0, **options: Any) -> Health:
    """``PING`` a Redis server and report its version (``options``: username, password...)."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                      socket_connect_timeout=timeout_s, **options)
    except ValueError as exc:
        return Health(False, f"bad Redis URL {url!r}: {exc}")
    try:
        if not client.ping():
            return Health(False, "PING did not answer PONG")
        info = client.info("server")
    except redis.RedisError as exc:
        return Health(False, f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
    return Health(True, f"redis {info.get('redis_version', '?')}")


def check_prometheus(url: str, timeout_s: float = 2.0) -> Health:
    """``GET /-/ready`` on a Prometheus server and report its version."""
    base = url.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=timeout_s) as resp:
            if resp.status != 200:
                return Health(False, f"/-/ready answered HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        return Health(False, f"/-/ready answered HTTP {exc.code}")
    except (OSError, ValueError) as exc:
        return Health(False, f"{base}/-/ready unreachable: {exc}")
    version = "?"
    try:
        with urllib.request.urlopen(f"{base}/api/v1/status/buildinfo", timeout=timeout_s) as r:
            version = json.load(r)["data"]["version"]
    except (OSError, ValueError, KeyError) as exc:
        logger.debug("no Prometheus build info at %s: %s", base, exc)
    return Health(True, f"prometheus {version}, ready")


CHECKS: dict[str, Callable[[str], Health]] = {
    "kafka": check_kafka,
    "redis": check_redis,
    "prometheus": check_prometheus,
}
"""The probe for each service name, taking its address."""
