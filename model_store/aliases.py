"""Alias operations of the registry: move, read, promote, roll back, with history.

Aliases (``latest``, ``candidate``, ``production`` ...) are movable names for versions.
Every move is a compare-and-set in the backend that records who moved it, when, from which
version to which, and notifies subscribers. A rollback moves an alias back to the target
it had before its current one (see :mod:`model_store.rollback`).

>>> from model_store.registry import Registry
>>> reg = Registry.from_url("memory://", signer=None)
>>> for blob in (b"a", b"b", b"c"):
...     _ = reg.publish("reco", blob, format="raw")
>>> _ = reg.promote("reco", 1, actor="ci"); _ = reg.promote("reco", 3, actor="ci")
>>> reg.aliases("reco"), reg.rollback("reco", actor="ops").to
({'latest': 3, 'production': 3}, 1)
>>> [(c.kind, c.previous, c.to, c.actor) for c in reg.alias_history("reco", "production")]
[('rollback', 3, 1, 'ops'), ('set', 1, 3, 'ci'), ('set', None, 1, 'ci')]
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from model_store.backend import Backend
from model_store.errors import AliasNotFoundError, ConflictError, VersionNotFoundError
from model_store.keys import check_alias, check_name
from model_store.records import AliasChange
from model_store.rollback import rollback_target

__all__ = ["AliasOperations", "Ref"]

log = logging.getLogger(__name__)

Ref = int | str


class AliasOperations:
    """The alias half of :class:`~model_store.registry.Registry` (mixed into it)."""

    backend: Backend
    clock: Callable[[], float]

    def _resolve(self, model: str, version: Ref) -> int:
        raise NotImplementedError

    def set_alias(self, model: str, alias: str, version: Ref, *, actor: str = "") -> AliasChange:
        """Point ``alias`` at ``version`` (atomically, with history and a notice)."""
        check_alias(alias)
        number = self._resolve(model, version)
        now = self.clock()
        previous = self.backend.move_alias(model, alias, number, actor=actor, kind="set",
                                           now=now)
        log.info("model %s alias %s: %s -> %d (by %r)", model, alias, previous, number, actor)
        return AliasChange(alias=alias, to=number, previous=previous, actor=actor, ts=now)

    def get_alias(self, model: str, alias: str) -> int | None:
        """The version number ``alias`` points at, or ``None``."""
        check_name("model", model)
        return self.backend.get_alias(model, check_alias(alias))

    def aliases(self, model: str) -> dict[str, int]:
        """Every alias of ``model`` and the version it points at."""
        check_name("model", model)
        return self.backend.aliases(model)

    def promote(
        self, model: str, version: Ref, alias: str = "production", *, actor: str = ""
    ) -> AliasChange:
        """Point ``alias`` (``production`` by default) at ``version``."""
        return self.set_alias(model, alias, version, actor=actor)

    def alias_history(self, model: str, alias: str, limit: int = 100) -> list[AliasChange]:
        """The alias's last ``limit`` moves, newest first."""
        check_name("model", model)
        return self.backend.alias_history(model, check_alias(alias), limit)

    def rollback(self, model: str, alias: str = "production", *, actor: str = "") -> AliasChange:
        """Move ``alias`` back to the target it had before its current one."""
        for _ in range(10):
            current = self.get_alias(model, alias)
            if current is None:
                raise AliasNotFoundError(model, alias)
            target = self._rollback_target(model, alias, current)
            if target is None:
                raise AliasNotFoundError(model, alias, "no earlier version to roll back to")
            now = self.clock()
            try:
                self.backend.move_alias(model, alias, target, actor=actor, kind="rollback",
                                        now=now, expected=current)
            except (ConflictError, VersionNotFoundError):
                continue  # moved or deleted meanwhile: look again
            log.warning("model %s alias %s rolled back: %d -> %d (by %r)",
                        model, alias, current, target, actor)
            return AliasChange(alias=alias, to=target, previous=current, actor=actor, ts=now,
                               kind="rollback")
        raise ConflictError(f'model "{model}" alias "{alias}" kept moving during rollback')

    def _rollback_target(self, model: str, alias: str, current: int) -> int | None:
        history = self.backend.alias_history(model, alias, 1000)
        return rollback_target(history, current,
                               lambda n: self.backend.read_meta(model, [n])[0] is not None)
