"""The Redis key layout of the model store, in one place.

Every key of one model carries the model's name as a Redis Cluster *hash tag*
(``{reco}``): Cluster hashes only the part between the first ``{`` and ``}``, so all keys
of a model live in one hash slot and the store's ``MULTI``/``EXEC`` and ``WATCH`` (which
Cluster allows only within one slot) keep working. The one key outside any model, the set of
model names, is written outside those transactions. :class:`LegacyKeys` is the layout before
hash tags (``lifelong:reco:versions``), read by :mod:`model_store.migrate`.

>>> k = Keys("lifelong")
>>> k.versions("reco"), k.meta("reco", 7), k.chunk("reco", 7, 0)
('lifelong:{reco}:versions', 'lifelong:{reco}:v:7', 'lifelong:{reco}:v:7:chunk:0')
>>> k.alias("reco", "production"), k.history("reco", "production")
('lifelong:{reco}:alias:production', 'lifelong:{reco}:alias:production:history')
>>> k.seq("reco"), k.channel("reco"), k.log("reco"), k.models()
('lifelong:{reco}:seq', 'lifelong:{reco}:events', 'lifelong:{reco}:log', 'lifelong:models')
>>> LegacyKeys("lifelong").versions("reco"), k.model_pattern("reco")
('lifelong:reco:versions', 'lifelong:{reco}:*')
"""

from __future__ import annotations

import re

from model_store.errors import InvalidNameError

__all__ = ["NAME_PATTERN", "Keys", "LegacyKeys", "check_alias", "check_name"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a valid model or alias name, else raise.

    Names are 1-128 characters of letters, digits, ``.``, ``_`` and ``-`` (no ``:``, which
    separates key parts).

    >>> check_name("model", "a:b")
    Traceback (most recent call last):
    ...
    model_store.errors.InvalidNameError: invalid model name 'a:b': use 1-128 of [A-Za-z0-9._-]
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidNameError(f"invalid {kind} name {name!r}: use 1-128 of [A-Za-z0-9._-]")
    return name


def check_alias(alias: str) -> str:
    """Return ``alias`` if valid: a name (see :func:`check_name`) that is not all digits.

    >>> check_alias("7")
    Traceback (most recent call last):
    ...
    model_store.errors.InvalidNameError: invalid alias name '7': all digits reads as a version
    """
    check_name("alias", alias)
    if alias.isdigit():
        raise InvalidNameError(f"invalid alias name {alias!r}: all digits reads as a version")
    return alias


class Keys:
    """Key names under one prefix (default ``lifelong``); a model's keys share a hash slot.

    The prefix may not hold ``{`` or ``}`` (it would become the hash tag).
    """

    def __init__(self, prefix: str = "lifelong") -> None:
        if not prefix or any(c.isspace() or c in "{}" for c in prefix):
            raise InvalidNameError(f"invalid key prefix {prefix!r}")
        self.prefix = prefix

    def root(self, model: str) -> str:
        """What every key of ``model`` starts with: the prefix and the ``{model}`` hash tag."""
        return f"{self.prefix}:{{{model}}}"

    def model_pattern(self, model: str) -> str:
        """A ``SCAN MATCH`` pattern for every key of ``model`` (braces are literal in globs)."""
        return f"{self.root(model)}:*"

    def models(self) -> str:
        """Set of model names that have published at least once."""
        return f"{self.prefix}:models"

    def seq(self, model: str) -> str:
        """Version counter (INCR): numbers only grow, even after deletes."""
        return f"{self.root(model)}:seq"

    def versions(self, model: str) -> str:
        """Sorted set of version numbers (score = number)."""
        return f"{self.root(model)}:versions"

    def meta(self, model: str, number: int) -> str:
        """Metadata hash of one version."""
        return f"{self.root(model)}:v:{number}"

    def chunk(self, model: str, number: int, index: int) -> str:
        """One chunk of a version's blob."""
        return f"{self.root(model)}:v:{number}:chunk:{index}"

    def alias(self, model: str, alias: str) -> str:
        """String holding the version an alias points at."""
        return f"{self.root(model)}:alias:{alias}"

    def history(self, model: str, alias: str) -> str:
        """List of an alias's moves as JSON, newest first."""
        return f"{self.root(model)}:alias:{alias}:history"

    def aliases(self, model: str) -> str:
        """Set of a model's alias names."""
        return f"{self.root(model)}:aliases"

    def channel(self, model: str) -> str:
        """Pub/sub channel of publish and alias notices."""
        return f"{self.root(model)}:events"

    def log(self, model: str) -> str:
        """Redis Stream of the same notices, for catch-up."""
        return f"{self.root(model)}:log"

    def audit(self, model: str, kind: str) -> str:
        """Redis Stream of audit records of one ``kind`` (``erasures``), never trimmed."""
        return f"{self.root(model)}:{kind}"


class LegacyKeys(Keys):
    """The layout before hash tags (``{prefix}:{model}:...``): only for migrating a store."""

    def root(self, model: str) -> str:
        """The old key root: no hash tag."""
        return f"{self.prefix}:{model}"
