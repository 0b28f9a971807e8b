"""Double buffering for a subscriber that follows deltas: apply to the standby, swap, replay.

A subscriber serves one immutable reference; a delta (:mod:`model_store.delta`) changes rows
in place, so applying it to the served object would let a concurrent ``predict`` read half
of it. :class:`Replicas` keeps, per alias, a second copy of the served model (the
*standby*). A delta whose chain continues the served version is applied to the standby,
which is then swapped in by one reference assignment; the copy that just left service
receives the same deltas when the next one arrives (not at once: a ``predict`` that took
the old reference just before the swap may still be reading it). Anything else (no
standby yet, a version whose chain does not pass through the served one, a delta that fails
its checks) is loaded whole off to the side: base + deltas (:func:`load_chain`). The cost
is twice the model's memory and about twice O(delta) of work per version.

>>> from model_store import Registry
>>> from model_store.signing import Signer
>>> from model_store.delta import DeltaBlob, publish_delta, take_delta
>>> from learning.online import OnlineLearner
>>> from stream.schema import Event
>>> reg = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-doc-key"))
>>> learner = OnlineLearner("BiasedMF", seed=1)
>>> base = reg.publish_object("reco", learner); learner.clear_dirty()
>>> replicas = Replicas(reg, "reco")
>>> served = replicas.load("latest", None, base)
>>> replicas.prepare("latest", base)       # after the swap: the standby copy
>>> _ = learner.learn_one(Event("e1", "u1", "i1", "rating", 4.0, 1.0))
>>> v2 = publish_delta(reg, "reco", DeltaBlob(parent_sha256=base.sha256, base=1,
...                    learner=take_delta(learner)), parent=base)
>>> nxt = replicas.load("latest", (base, served), v2)
>>> same = nxt.predict_one("u1", "i1") == learner.predict_one("u1", "i1")
>>> nxt is not served, replicas.applied, same
(True, 1, True)
"""

from __future__ import annotations

import logging
from typing import Any

from learning.deltas import delta_capable
from model_store.blob import stream as blob_stream
from model_store.codec import DELTA_FORMAT
from model_store.delta import DeltaBlob, apply_blob, load_chain
from model_store.errors import IntegrityError
from model_store.records import ModelVersion

__all__ = ["Replicas", "takes_deltas"]

log = logging.getLogger(__name__)

_MAX_STEPS = 1000  # deltas applied in one go before loading whole is the cheaper way


def takes_deltas(version: ModelVersion) -> bool:
    """Whether ``version`` is on a chain, so a subscriber keeps a standby copy of it.

    A delta, or a base its publisher follows with deltas (metadata ``chain`` 0).
    """
    return version.format == DELTA_FORMAT or version.extra.get("chain") == 0


class Replicas:
    """The standby copy of each followed alias and the deltas it still has to apply."""

    def __init__(self, registry: Any, model: str):
        self.registry = registry
        self.model = model
        self._standby: dict[str, tuple[Any, list[DeltaBlob]]] = {}
        self.applied = 0  # versions reached by deltas
        self.reloaded = 0  # versions loaded whole (base + deltas)

    def load(self, alias: str, served: tuple[ModelVersion, Any] | None,
             target: ModelVersion) -> Any:
        """The object to serve for ``target``, built without touching the served one."""
        path = self._path(served[0], target) if served is not None else None
        standby = self._standby.pop(alias, None)
        if path is not None and standby is not None and served is not None:
            replica, pending = standby
            blobs = self._blobs(served[0], path)
            for blob in [*pending, *blobs]:
                apply_blob(replica, blob, worker=False)
            self._standby[alias] = (served[1], blobs)  # replayed at the next delta
            self.applied += 1
            return replica
        self.reloaded += 1
        return self._whole(target)

    def prepare(self, alias: str, version: ModelVersion) -> None:
        """After a whole load was swapped in: build its standby (a model that takes deltas)."""
        if alias in self._standby:
            return
        obj = self._whole(version)
        if delta_capable(obj):
            self._standby[alias] = (obj, [])

    def forget(self, alias: str) -> None:
        """Drop ``alias``'s standby (its served copy is no longer the chain's)."""
        self._standby.pop(alias, None)

    def _whole(self, version: ModelVersion) -> Any:
        if version.format == DELTA_FORMAT:
            obj = load_chain(self.registry, self.model, version)[1]
        else:
            obj = self.registry.load(self.model, version.number)[1]
        track = getattr(obj, "track_rows", None)
        if callable(track) and delta_capable(obj):
            track(False)  # a served replica publishes nothing: no dirty ids to keep
        return obj

    def _path(self, current: ModelVersion, target: ModelVersion) -> list[ModelVersion] | None:
        """The deltas from ``current`` to ``target``, oldest first (None: not on its chain)."""
        path = [target]
        while len(path) <= _MAX_STEPS and path[-1].format == DELTA_FORMAT:
            parent = path[-1].parent
            if parent == current.number:
                path.reverse()
                return path
            if parent is None or parent < current.number:
                return None
            path.append(self.registry.get(self.model, parent))
        return None

    def _blobs(self, current: ModelVersion, path: list[ModelVersion]) -> list[DeltaBlob]:
        blobs, parent = [], current
        for version in path:
            data = b"".join(blob_stream(self.registry.backend, version))
            blob = self.registry.decode(version, data)  # sha256 and signature verified
            if not isinstance(blob, DeltaBlob) or blob.parent_sha256 != parent.sha256:
                raise IntegrityError(f'model "{self.model}" version {version.number}: not a '
                                     f"delta over version {parent.number}, refusing it")
            blobs.append(blob)
            parent = version
        return blobs
