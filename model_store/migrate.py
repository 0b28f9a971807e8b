"""Move a store from the key layout before hash tags to the one with them (one-off).

Before: ``lifelong:reco:versions``; after: ``lifelong:{reco}:versions`` (every key of a model
in one Redis Cluster hash slot, :mod:`model_store.keys`). :func:`migrate_hash_tags` finds the
models (the models set, plus any ``{prefix}:*:seq`` counter) and ``RENAME`` s each old key of
each model to its new name; ``RENAME`` keeps the value, its type and its TTL (a staging chunk
keeps expiring). Run it once on the single Redis the store lives in, with the publishers
stopped, before moving to Redis Cluster (``RENAME`` across slots needs one node). It is
idempotent: a second run finds nothing to move. A model whose new-layout keys already
exist is left alone and reported (both layouts at once means someone published after the
upgrade without migrating; resolve by hand).

>>> plan_key("lifelong", "reco", "lifelong:reco:v:3:chunk:0")
'lifelong:{reco}:v:3:chunk:0'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis

from model_store.keys import NAME_PATTERN, Keys, LegacyKeys

__all__ = ["MigrationReport", "migrate_hash_tags", "plan_key"]

log = logging.getLogger(__name__)


@dataclass
class MigrationReport:
    """What a migration moved (or, with ``dry_run``, would move)."""

    models: dict[str, int] = field(default_factory=dict)  # model -> keys moved
    skipped: list[str] = field(default_factory=list)  # models already in both layouts

    @property
    def keys(self) -> int:
        """Keys moved in all."""
        return sum(self.models.values())


def plan_key(prefix: str, model: str, old_key: str) -> str:
    """The new name of ``old_key``, a key of ``model`` in the old layout."""
    head = f"{LegacyKeys(prefix).root(model)}:"
    if not old_key.startswith(head):
        raise ValueError(f"{old_key!r} is not a key of model {model!r} under {prefix!r}")
    return f"{Keys(prefix).root(model)}:{old_key[len(head):]}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _models(client: redis.Redis, prefix: str) -> list[str]:
    names = {_text(m) for m in client.smembers(Keys(prefix).models())}
    for key in client.scan_iter(match=f"{prefix}:*:seq", count=1000):
        name = _text(key)[len(prefix) + 1 : -len(":seq")]
        if NAME_PATTERN.fullmatch(name):  # skips the new layout's "{name}"
            names.add(name)
    return sorted(names)


def migrate_hash_tags(client: redis.Redis, prefix: str = "lifelong", *,
                      dry_run: bool = False) -> MigrationReport:
    """Rename every old-layout key of every model under ``prefix``; see the module docstring."""
    report = MigrationReport()
    new = Keys(prefix)
    for model in _models(client, prefix):
        old_keys = sorted(_text(k) for k in client.scan_iter(
            match=f"{LegacyKeys(prefix).root(model)}:*", count=1000))
        if not old_keys:
            continue
        if client.exists(new.seq(model), new.versions(model)):
            log.warning("model %s has keys in both layouts; left alone", model)
            report.skipped.append(model)
            continue
        if not dry_run:
            with client.pipeline(transaction=True) as pipe:
                for key in old_keys:
                    pipe.rename(key, plan_key(prefix, model, key))
                pipe.execute()
        report.models[model] = len(old_keys)
        log.info("model %s: %d keys %s", model, len(old_keys),
                 "to move" if dry_run else "moved")
    return report
