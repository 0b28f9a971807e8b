"""Configuration: read once, at start, into a typed object.

Precedence for each setting: the command-line flag, then the environment variable, then
the default. Service addresses with no flag or variable come from the local launcher
(``lifelong services up``). A bad value is an error naming the key and what is expected.

>>> s = Settings.from_env({"LIFELONG_PUBLISH_EVERY_EVENTS": "500", "REDIS_URL": "redis://h:1/0",
...                        "KAFKA_BOOTSTRAP_SERVERS": "h:9092"})
>>> s.publish_every_events, s.redis_url
(500, 'redis://h:1/0')
>>> Settings.from_env({"LIFELONG_PUBLISH_EVERY_EVENTS": "lots"})
Traceback (most recent call last):
...
lifelong.config.ConfigError: LIFELONG_PUBLISH_EVERY_EVENTS='lots': expected a positive integer
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ConfigError", "Settings"]


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the key."""


def _positive(kind: type[int] | type[float], what: str) -> Callable[[str, str], Any]:
    def parse(key: str, raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            value = 0
        if not value > 0:
            raise ConfigError(f"{key}={raw!r}: expected a positive {what}")
        return value

    return parse


_positive_int = _positive(int, "integer")
_positive_float = _positive(float, "number")


def _port(key: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise ConfigError(f"{key}={raw!r}: expected a TCP port number 0-65535 (0 = any free)")
    return value


def _name(key: str, raw: str) -> str:
    if not raw or any(c.isspace() for c in raw):
        raise ConfigError(f"{key}={raw!r}: expected a non-empty name without spaces")
    return raw


def _url(key: str, raw: str) -> str:
    if "://" not in raw:
        raise ConfigError(f"{key}={raw!r}: expected a URL such as redis://127.0.0.1:6379/0")
    return raw


def _text(key: str, raw: str) -> str:
    if not raw:
        raise ConfigError(f"{key} is empty: expected a value")
    return raw


@dataclass(frozen=True)
class Settings:
    """Everything a lifelong process needs to know, validated."""

    kafka_bootstrap: str | None = None
    redis_url: str | None = None
    prometheus_url: str | None = None
    topic: str = "events"
    dlq_topic: str = "events.dlq"
    partitions: int = 3
    group_id: str = "lifelong-online"
    model: str = "reco"
    model_kind: str = "BiasedMF"
    prefix: str = "lifelong"
    publish_every_events: int = 1000
    publish_every_seconds: float = 30.0
    keep_last: int = 20
    metrics_port: int = 0
    metrics_addr: str = "127.0.0.1"

    # field name -> (environment variable, parser)
    ENV: Mapping[str, tuple[str, Callable[[str, str], Any]]] = dataclasses.field(
        default_factory=lambda: {
            "kafka_bootstrap": ("KAFKA_BOOTSTRAP_SERVERS", _text),
            "redis_url": ("REDIS_URL", _url),
            "prometheus_url": ("PROMETHEUS_URL", _url),
            "topic": ("LIFELONG_TOPIC", _name),
            "dlq_topic": ("LIFELONG_DLQ_TOPIC", _name),
            "partitions": ("LIFELONG_PARTITIONS", _positive_int),
            "group_id": ("LIFELONG_GROUP_ID", _name),
            "model": ("LIFELONG_MODEL", _name),
            "model_kind": ("LIFELONG_MODEL_KIND", _name),
            "prefix": ("LIFELONG_PREFIX", _name),
            "publish_every_events": ("LIFELONG_PUBLISH_EVERY_EVENTS", _positive_int),
            "publish_every_seconds": ("LIFELONG_PUBLISH_EVERY_SECONDS", _positive_float),
            "keep_last": ("LIFELONG_KEEP_LAST", _positive_int),
            "metrics_port": ("LIFELONG_METRICS_PORT", _port),
            "metrics_addr": ("LIFELONG_METRICS_ADDR", _text),
        },
        repr=False,
        compare=False,
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """Build settings from ``flags`` (non-``None`` win), then ``env`` (default: os.environ).

        Flags are validated like environment values, under the variable's name.
        """
        env = os.environ if env is None else env
        spec = cls().ENV
        unknown = set(flags) - set(spec)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for field_name, (var, parse) in spec.items():
            flag = flags.get(field_name)
            if flag is not None:
                values[field_name] = parse(var, str(flag))
            elif env.get(var, "") != "":
                values[field_name] = parse(var, env[var])
        return cls(**values)
