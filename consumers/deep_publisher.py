"""The fine-tuner's side of the model store: deep versions as safetensors, candidate, production.

Every round's model is published as a new version (format ``safetensors``, written by the
store's codec table: :func:`learning.weights.dump`), ``candidate`` is moved to it, and
``production`` only when the gate says so. :meth:`DeepPublisher.production` loads what
``production`` serves now (cached by version number) so a candidate can be compared with
it on the same slices, and :meth:`DeepPublisher.warm_start` finds the version a restarted
fine-tuner continues from.

>>> from learning.torch_models import DeepRecommender
>>> from model_store import Registry
>>> pub = DeepPublisher(Registry.from_url("memory://", signer=None), "reco-deep")
>>> pub.production() is None
True
>>> v = pub.publish(DeepRecommender(n_factors=2), metadata={"metrics": {"recent_rmse": 1.0}})
>>> pub.promote(v.number, reason="no production model")
>>> sorted(pub.registry.aliases("reco-deep").items())
[('candidate', 1), ('latest', 1), ('production', 1)]
>>> pub.production()[0].number, pub.warm_start()[0].number
(1, 1)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from consumers.finite import non_finite
from learning.torch_models import DeepRecommender
from model_store.codec import SAFETENSORS_FORMAT, encode
from model_store.errors import AliasNotFoundError, VersionNotFoundError
from model_store.records import ModelVersion
from model_store.registry import Registry

__all__ = ["DeepPublisher"]

log = logging.getLogger(__name__)


class DeepPublisher:
    """Publish and load :class:`DeepRecommender` versions of ``model`` in ``registry``.

    ``parent`` is the version the fine-tuner started from (warm start); each publish
    becomes the parent of the next. ``actor`` is recorded in the alias history.
    """

    def __init__(self, registry: Registry, model: str, *, parent: int | None = None,
                 actor: str = "finetune"):
        self.registry = registry
        self.model = model
        self.actor = actor
        self._last = parent
        self._production: tuple[ModelVersion, DeepRecommender] | None = None

    def load(self, ref: int | str) -> tuple[ModelVersion, DeepRecommender] | None:
        """The version ``ref`` (number or alias) as a recommender on CPU; ``None`` if absent.

        Decoded by the store's codec table (:meth:`Registry.load`); a version that is not a
        deep model counts as absent, with a warning.
        """
        try:
            version, obj = self.registry.load(self.model, ref)
        except (AliasNotFoundError, VersionNotFoundError):
            return None
        if not isinstance(obj, DeepRecommender):
            log.warning("model %s version %d has format %r, not a deep model: ignored",
                        self.model, version.number, version.format)
            return None
        return version, obj

    def production(self) -> tuple[ModelVersion, DeepRecommender] | None:
        """What ``production`` points at now, loaded (reloaded only when it moved)."""
        number = self.registry.get_alias(self.model, "production")
        if number is None:
            return None
        cached = self._production
        if cached is None or cached[0].number != number:
            self._production = cached = self.load(number)
        return cached

    def warm_start(self) -> tuple[ModelVersion, DeepRecommender] | None:
        """The version to continue from: ``production``, else ``candidate``, else ``latest``."""
        for alias in ("production", "candidate", "latest"):
            found = self.load(alias)
            if found is not None:
                self._last = found[0].number
                return found
        return None

    def publish(self, recommender: DeepRecommender, *,
                metadata: Mapping[str, Any] | None = None) -> ModelVersion:
        """Store ``recommender`` as the next version and point ``candidate`` at it.

        A model with a NaN or infinite weight is refused (``ValueError``; the round fails
        and is counted, the last good version stays), never stored.
        """
        where = non_finite(recommender.module)
        if where is not None:
            raise ValueError(f'model "{self.model}": weight module{where} is not finite; not '
                             "publishing it")
        fmt = getattr(recommender, "store_format", SAFETENSORS_FORMAT)  # deep-ranking too
        version = self.registry.publish(self.model, encode(fmt, recommender),
                                        format=fmt, metadata=metadata,
                                        parent=self._last)
        self._last = version.number
        self.registry.set_alias(self.model, "candidate", version.number, actor=self.actor)
        return version

    def promote(self, number: int, *, reason: str) -> None:
        """Point ``production`` at version ``number``."""
        self.registry.promote(self.model, number, actor=self.actor)
        log.info("model %s: production -> %d (%s)", self.model, number, reason)
