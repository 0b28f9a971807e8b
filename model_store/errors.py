"""The model store's exceptions: one base type, messages that name the model and version.

Every error the store raises on purpose is a :class:`ModelStoreError`, so a caller can
catch the package's failures in one clause and let everything else propagate.

>>> try:
...     raise VersionNotFoundError("reco", 7)
... except ModelStoreError as exc:
...     print(exc)
model "reco" version 7 not found
"""

from __future__ import annotations

__all__ = [
    "AliasNotFoundError",
    "ConflictError",
    "FormatError",
    "IntegrityError",
    "InvalidNameError",
    "ModelStoreError",
    "SigningKeyError",
    "UnsignedModelError",
    "VersionNotFoundError",
]


class ModelStoreError(Exception):
    """Base class of every error the model store raises on purpose."""


class InvalidNameError(ModelStoreError, ValueError):
    """A model, alias or format name, or another argument, that the store refuses."""


class FormatError(ModelStoreError, ValueError):
    """A version's format is not the one the operation reads (e.g. not ``river-pickle``)."""


class VersionNotFoundError(ModelStoreError, LookupError):
    """The model has no such version (never published, or deleted by retention)."""

    def __init__(self, model: str, version: int | str, detail: str = "") -> None:
        self.model = model
        self.version = version
        suffix = f" ({detail})" if detail else ""
        super().__init__(f'model "{model}" version {version} not found{suffix}')


class AliasNotFoundError(ModelStoreError, LookupError):
    """The model has no such alias, or the alias has nowhere to roll back to."""

    def __init__(self, model: str, alias: str, detail: str = "") -> None:
        self.model = model
        self.alias = alias
        suffix = f" ({detail})" if detail else ""
        super().__init__(f'model "{model}" alias "{alias}" not found{suffix}')


class ConflictError(ModelStoreError):
    """A compare-and-set lost a race: the alias moved since it was read. Retry."""


class IntegrityError(ModelStoreError):
    """A blob does not match its recorded size, sha256 or signature: it is refused."""


class UnsignedModelError(IntegrityError):
    """A blob that must be signed (a pickle) carries no signature: it is refused."""


class SigningKeyError(ModelStoreError):
    """No signing key is configured where one is needed, or the key is unusable."""
