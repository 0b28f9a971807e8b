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
from model_store.errors import IntegrityError, VersionNotFoundError
from model_store.records import ModelVersion
from model_store.signing import check_signature

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
        try:
            found = self._path(served[0], target) if served is not None else None
        except VersionNotFoundError as exc:  # retention took a link: load it whole
            log.info("model %s: no delta path to version %d (%s)", self.model, target.number,
                     exc)
            found = None
        standby = self._standby.pop(alias, None)
        if found is not None and standby is not None and served is not None:
            start_sha, path = found
            if not path:  # a base equal to the served state (``rebase_of``): nothing to do
                self._standby[alias] = standby
                self.applied += 1
                return served[1]
            replica, pending = standby
            blobs = self._blobs(start_sha, path)
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

    def _path(self, current: ModelVersion, target: ModelVersion
              ) -> tuple[str, list[ModelVersion]] | None:
        """The deltas from ``current`` to ``target`` (oldest first) and their first parent's sha.

        None: ``target`` is not on ``current``'s chain.
        A base written by a forked child (metadata ``rebase_of``, ``rebase_sha256``, signed)
        holds the same state as the version it names: deltas over it continue the served
        chain when the served version is that version or a delta after it.
        """
        anchors = {current.number: current.sha256}
        link = self._rebase(current)
        if link is not None:
            anchors[link[0]] = link[1]
        path = [target]
        while len(path) <= _MAX_STEPS:
            last = path[-1]
            if last.format != DELTA_FORMAT:
                link = self._rebase(last)
                if link is None or not self._passes(current, anchors, *link):
                    return None
                path.pop()  # the base itself: its state is one the served state passed
                path.reverse()
                return last.sha256, path
            parent = last.parent
            if parent in anchors:
                path.reverse()
                return anchors[parent], path
            if parent is None:
                return None
            found = self.registry.get(self.model, parent)
            if found.format == DELTA_FORMAT and parent < min(anchors):
                return None
            path.append(found)
        return None

    def _rebase(self, version: ModelVersion) -> tuple[int, str] | None:
        """``(number, sha256)`` of the version a child-written base equals, if it is one."""
        number, sha = version.extra.get("rebase_of"), version.extra.get("rebase_sha256")
        if version.format == DELTA_FORMAT or not isinstance(number, int) or not sha:
            return None
        try:  # the claim is trusted only under a valid signature of the metadata
            check_signature(version, self.registry.signer, require=True,
                            legacy=not getattr(self.registry, "require_signatures", False))
        except Exception as exc:  # loaded whole, which refuses it properly
            log.warning("model %s version %d: rebase_of not trusted (%s)", self.model,
                        version.number, exc)
            return None
        return number, str(sha)

    def _passes(self, current: ModelVersion, anchors: dict[int, str], number: int,
                sha: str) -> bool:
        """Whether the served state is version ``number`` (``sha``) or a delta chain after it."""
        if anchors.get(number) == sha:
            return True
        walk, steps = current, 0
        while walk.format == DELTA_FORMAT and walk.parent is not None and steps < _MAX_STEPS:
            if walk.parent < number:
                return False
            walk, steps = self.registry.get(self.model, walk.parent), steps + 1
            if walk.number == number:
                return walk.sha256 == sha
        return False

    def _blobs(self, start_sha: str, path: list[ModelVersion]) -> list[DeltaBlob]:
        blobs, parent_sha = [], start_sha
        for version in path:
            data = b"".join(blob_stream(self.registry.backend, version))
            blob = self.registry.decode(version, data)  # sha256 and signature verified
            if not isinstance(blob, DeltaBlob) or blob.parent_sha256 != parent_sha:
                raise IntegrityError(f'model "{self.model}" version {version.number}: not a '
                                     f"delta over version {version.parent}, refusing it")
            blobs.append(blob)
            parent_sha = version.sha256
        return blobs
