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


def _quality(key: str, raw: str) -> str:
    from stream.quality import QualityConfigError, QualityGates

    try:
        QualityGates.from_env_value(raw, key)
    except QualityConfigError as exc:
        raise ConfigError(str(exc)) from exc
    return raw


def _share(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 0.5:
        raise ConfigError(f"{key}={raw!r}: expected a share in (0, 0.5]")
    return value


def _fraction(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"{key}={raw!r}: expected a share in (0, 1]")
    return value


def _non_negative(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0.0:
        raise ConfigError(f"{key}={raw!r}: expected a number >= 0")
    return value


def _count(key: str, raw: str) -> int:
    value = _integer(key, raw)
    if value < 0:
        raise ConfigError(f"{key}={raw!r}: expected an integer >= 0")
    return value


def _integer(key: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r}: expected an integer") from None


def _choice(*options: str, upper: bool = False) -> Callable[[str, str], str]:
    """A parser accepting one of ``options`` (case-insensitively, as upper case, if ``upper``)."""
    def parse(key: str, raw: str) -> str:
        value = raw.upper() if upper else raw
        if value not in options:
            raise ConfigError(f"{key}={raw!r}: expected one of {', '.join(options)}")
        return value

    return parse


def _device(key: str, raw: str) -> str:
    if raw in ("auto", "cpu", "cuda") or (raw.startswith("cuda:") and raw[5:].isdigit()):
        return raw
    raise ConfigError(f"{key}={raw!r}: expected auto, cpu, cuda or cuda:N")


def _file(key: str, raw: str) -> str:
    if not os.path.isfile(os.path.expanduser(raw)):
        raise ConfigError(f"{key}={raw!r}: no such file")
    return os.path.expanduser(raw)


def _bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ConfigError(f"{key}={raw!r}: expected true or false")
    return value in ("1", "true", "yes", "on")


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
    quarantine_topic: str = "events.quarantine"
    quality: str = ""  # data-quality gates: JSON over stream.quality.DEFAULT_SPEC, or "off"
    partitions: int = 3
    group_id: str = "lifelong-online"
    model: str = "reco"
    model_kind: str = "BiasedMF"  # the ranking task's default ("rerank") when task=ranking
    task: str = "rating"  # rating (regress the value) or ranking (implicit): learning.task
    prefix: str = "lifelong"
    # Redis AUTH / ACL user (else from REDIS_URL) and Kafka SASL / TLS: see docs/operations.md
    redis_username: str | None = None
    redis_password: str | None = dataclasses.field(default=None, repr=False)
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = dataclasses.field(default=None, repr=False)
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    # a version every half second, or every 10,000 events if sooner (docs/performance.md:
    # freshness p99 under 1 s at 5k events/s, and a catching-up learner publishes 2 a second)
    publish_every_events: int = 10_000
    publish_every_seconds: float = 0.5
    keep_last: int = 20
    # versions created longer ago than this are pruned during a run, the newest excepted
    # (0: by count only): docs/privacy.md, retention
    version_max_age_seconds: float = 30 * 24 * 3600.0
    # publishing bounded by change (docs/publishing.md): deltas between whole versions
    publish_max_share: float = 0.1  # the floor: at most this share of time publishing
    # a new base after this many deltas (0: every version whole): at the 0.5 s cadence,
    # 1000 deltas are 8 minutes
    compact_after: int = 1000
    compact_share: float = 0.5  # ... or once the deltas add up to this share of the base
    compact_floor_bytes: int = 16 * 1024 * 1024  # ... of this many bytes, if the base is less
    # who writes a compaction base: a forked child while learning goes on ("fork", Linux and
    # a shared store, else in line) or the learner itself ("inline"): docs/publishing.md
    base_writer: str = "fork"
    metrics_port: int = 0
    metrics_addr: str = "127.0.0.1"
    # the fine-tune worker (``lifelong finetune``)
    finetune_model: str | None = None  # None: "{model}-deep"
    finetune_kind: str = "mf"
    finetune_group: str = "lifelong-finetune"
    round_every_events: int = 50_000
    round_every_seconds: float = 600.0
    min_fresh: int = 1000
    holdout_share: float = 0.1
    replay_capacity: int = 100_000
    replay_ratio: float = 1.0
    batch_size: int = 4096
    epochs: int = 1
    lr: float = 0.01
    n_factors: int = 32
    device: str = "auto"
    max_regression: float = 0.02
    max_old_regression: float = 0.05
    finetune_seed: int = 0
    # replay samples older than this before the newest event's time are dropped before each
    # round (0: kept until the capacity pushes them out): docs/privacy.md
    replay_max_age_seconds: float = 365 * 24 * 3600.0
    finetune_loss: str = "softmax"  # the ranking task's loss: softmax or bpr (learning.rank_loss)
    n_negatives: int = 64  # popularity-sampled negatives per minibatch (softmax) / sample (bpr)
    # the learner's impression join (task=ranking; None: no join): consumers/impressions.py
    impressions_topic: str | None = None
    impression_window: float = 1800.0
    max_impressions: int = 100_000
    # how long Kafka keeps dead letters and quarantined records (they hold producers' raw
    # bytes, raw user ids included unless the producer pseudonymises): docs/privacy.md
    dlq_retention_ms: int = 7 * 24 * 3600 * 1000
    # erasure requests the learner consumes next to the events (None: none; docs/privacy.md)
    erasure_topic: str | None = None
    # one learner, checkpoint and offsets per partition (docs/scaling.md)
    sharded: bool = False
    # sharded: what the shards exchange of their item rows (docs/scaling.md)
    item_exchange: str = "factors"
    item_exchange_every_events: int = 50  # per shard, between checkpoints too

    # field name -> (environment variable, parser)
    ENV: Mapping[str, tuple[str, Callable[[str, str], Any]]] = dataclasses.field(
        default_factory=lambda: {
            "kafka_bootstrap": ("KAFKA_BOOTSTRAP_SERVERS", _text),
            "redis_url": ("REDIS_URL", _url),
            "prometheus_url": ("PROMETHEUS_URL", _url),
            "topic": ("LIFELONG_TOPIC", _name),
            "dlq_topic": ("LIFELONG_DLQ_TOPIC", _name),
            "quarantine_topic": ("LIFELONG_QUARANTINE_TOPIC", _name),
            "quality": ("LIFELONG_QUALITY", _quality),
            "partitions": ("LIFELONG_PARTITIONS", _positive_int),
            "group_id": ("LIFELONG_GROUP_ID", _name),
            "model": ("LIFELONG_MODEL", _name),
            "model_kind": ("LIFELONG_MODEL_KIND", _name),
            "task": ("LIFELONG_TASK", _choice("rating", "ranking")),
            "prefix": ("LIFELONG_PREFIX", _name),
            "redis_username": ("REDIS_USERNAME", _text),
            "redis_password": ("REDIS_PASSWORD", _text),
            "kafka_security_protocol": ("KAFKA_SECURITY_PROTOCOL", _choice(
                "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL", upper=True)),
            "kafka_sasl_mechanism": ("KAFKA_SASL_MECHANISM", _choice(
                "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", upper=True)),
            "kafka_sasl_username": ("KAFKA_SASL_USERNAME", _text),
            "kafka_sasl_password": ("KAFKA_SASL_PASSWORD", _text),
            "kafka_ssl_cafile": ("KAFKA_SSL_CAFILE", _file),
            "kafka_ssl_certfile": ("KAFKA_SSL_CERTFILE", _file),
            "kafka_ssl_keyfile": ("KAFKA_SSL_KEYFILE", _file),
            "publish_every_events": ("LIFELONG_PUBLISH_EVERY_EVENTS", _positive_int),
            "publish_every_seconds": ("LIFELONG_PUBLISH_EVERY_SECONDS", _positive_float),
            "keep_last": ("LIFELONG_KEEP_LAST", _positive_int),
            "version_max_age_seconds": ("LIFELONG_VERSION_MAX_AGE_SECONDS", _non_negative),
            "publish_max_share": ("LIFELONG_PUBLISH_MAX_SHARE", _fraction),
            "compact_after": ("LIFELONG_COMPACT_AFTER", _count),
            "compact_share": ("LIFELONG_COMPACT_SHARE", _positive_float),
            "compact_floor_bytes": ("LIFELONG_COMPACT_FLOOR_BYTES", _count),
            "base_writer": ("LIFELONG_BASE_WRITER", _choice("fork", "inline")),
            "metrics_port": ("LIFELONG_METRICS_PORT", _port),
            "metrics_addr": ("LIFELONG_METRICS_ADDR", _text),
            "finetune_model": ("LIFELONG_FINETUNE_MODEL", _name),
            "finetune_kind": ("LIFELONG_FINETUNE_KIND", _choice("mf", "two_tower")),
            "finetune_group": ("LIFELONG_FINETUNE_GROUP", _name),
            "round_every_events": ("LIFELONG_ROUND_EVERY_EVENTS", _positive_int),
            "round_every_seconds": ("LIFELONG_ROUND_EVERY_SECONDS", _positive_float),
            "min_fresh": ("LIFELONG_MIN_FRESH", _positive_int),
            "holdout_share": ("LIFELONG_HOLDOUT_SHARE", _share),
            "replay_capacity": ("LIFELONG_REPLAY_CAPACITY", _positive_int),
            "replay_ratio": ("LIFELONG_REPLAY_RATIO", _non_negative),
            "batch_size": ("LIFELONG_BATCH_SIZE", _positive_int),
            "epochs": ("LIFELONG_EPOCHS", _positive_int),
            "lr": ("LIFELONG_LR", _positive_float),
            "n_factors": ("LIFELONG_FACTORS", _positive_int),
            "device": ("LIFELONG_DEVICE", _device),
            "max_regression": ("LIFELONG_MAX_REGRESSION", _non_negative),
            "max_old_regression": ("LIFELONG_MAX_OLD_REGRESSION", _non_negative),
            "finetune_seed": ("LIFELONG_FINETUNE_SEED", _integer),
            "replay_max_age_seconds": ("LIFELONG_REPLAY_MAX_AGE_SECONDS", _non_negative),
            "finetune_loss": ("LIFELONG_FINETUNE_LOSS", _choice("softmax", "bpr")),
            "n_negatives": ("LIFELONG_NEGATIVES", _positive_int),
            "impressions_topic": ("LIFELONG_IMPRESSIONS_TOPIC", _name),
            "impression_window": ("LIFELONG_IMPRESSION_WINDOW", _positive_float),
            "max_impressions": ("LIFELONG_MAX_IMPRESSIONS", _positive_int),
            "dlq_retention_ms": ("LIFELONG_DLQ_RETENTION_MS", _positive_int),
            "erasure_topic": ("LIFELONG_ERASURE_TOPIC", _name),
            "sharded": ("LIFELONG_SHARDED", _bool),
            "item_exchange": ("LIFELONG_ITEM_EXCHANGE", _choice("off", "biases", "factors")),
            "item_exchange_every_events": ("LIFELONG_ITEM_EXCHANGE_EVERY_EVENTS", _count),
        },
        repr=False,
        compare=False,
    )

    @property
    def deep_model(self) -> str:
        """The fine-tuner's model name: ``finetune_model``, else ``{model}-deep``."""
        return self.finetune_model or f"{self.model}-deep"

    @classmethod
    def describe(cls, field_name: str) -> str:
        """``[default: X; env VAR]`` for a CLI option's help: the one place defaults live.

        >>> Settings.describe("round_every_events")
        '[default: 50000; env LIFELONG_ROUND_EVERY_EVENTS]'
        """
        default = getattr(cls(), field_name)
        return f"[default: {default}; env {cls().ENV[field_name][0]}]"

    def kafka_client_config(self) -> dict[str, Any]:
        """kafka-python options for SASL / TLS (empty for a plain-text cluster).

        >>> s = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        ...     "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "reco",
        ...     "KAFKA_SASL_PASSWORD": "pw"})
        >>> sorted(s.kafka_client_config())
        ['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
        >>> "pw" in repr(s)
        False
        """
        protocol = self.kafka_security_protocol
        sasl = protocol.startswith("SASL")
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ConfigError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME "
                              "and KAFKA_SASL_PASSWORD")
        if self.kafka_sasl_username and not sasl:
            raise ConfigError("KAFKA_SASL_USERNAME is set but KAFKA_SECURITY_PROTOCOL is "
                              f"{protocol}: use SASL_SSL (or SASL_PLAINTEXT)")
        options: dict[str, Any] = {}
        if protocol != "PLAINTEXT":
            options["security_protocol"] = protocol
        if sasl:
            options.update(sasl_mechanism=self.kafka_sasl_mechanism or "PLAIN",
                           sasl_plain_username=self.kafka_sasl_username,
                           sasl_plain_password=self.kafka_sasl_password)
        for name in ("cafile", "certfile", "keyfile"):
            value = getattr(self, f"kafka_ssl_{name}")
            if value:
                options[f"ssl_{name}"] = value
        return options

    def redis_options(self) -> dict[str, Any]:
        """redis-py options for an ACL user / password given apart from ``REDIS_URL``.

        >>> Settings.from_env({"REDIS_USERNAME": "reco", "REDIS_PASSWORD": "pw"}).redis_options()
        {'username': 'reco', 'password': 'pw'}
        """
        out = {"username": self.redis_username, "password": self.redis_password}
        return {k: v for k, v in out.items() if v}

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
        if values.get("task") == "ranking":
            values["model_kind"] = _ranking_kind(values.get("model_kind"))
        return cls(**values)


def _ranking_kind(kind: str | None) -> str:
    """The ranking model for ``LIFELONG_TASK=ranking``: ``kind`` if it is one, else refused.

    >>> _ranking_kind(None), _ranking_kind("bpr")
    ('rerank', 'bpr')
    """
    from learning.ranking_learner import RANKING_MODELS
    from learning.task import RankingTask

    if kind is None:
        return RankingTask.default_model
    if kind not in RANKING_MODELS:
        raise ConfigError(f"LIFELONG_MODEL_KIND={kind!r}: with LIFELONG_TASK=ranking expected "
                          f"one of {', '.join(RANKING_MODELS)}")
    return kind
