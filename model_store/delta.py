"""The ``river-delta`` format: a version that is its parent plus the rows that changed.

A delta's bytes (msgpack, data only: nothing in them runs code) hold the parent's sha256,
the number of the base the chain starts from, a :class:`~learning.deltas.LearnerDelta` and,
when the version is a worker checkpoint, what changed in its dedup window (the ids appended,
the window's length after) and in the quality gates' per-user windows. The signature covers
the bytes' sha256, so it binds the delta to its exact predecessor.

A chain is a ``river-pickle`` base followed by deltas, each naming the previous version as
``parent``. :func:`load_chain` resolves one: it walks ``parent`` back to the base, loads it
(verified, signed), then verifies and applies every delta in order, refusing a delta whose
``parent_sha256`` is not its parent's. :meth:`Registry.load_object
<model_store.registry.Registry.load_object>` goes through it, so a restarted learner resumes
from base + deltas.

>>> from model_store import Registry
>>> from model_store.signing import Signer
>>> from learning.online import OnlineLearner
>>> from stream.schema import Event
>>> reg = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-doc-key"))
>>> learner = OnlineLearner("BiasedMF", seed=1)
>>> _ = learner.learn_one(Event("e0", "u1", "i1", "rating", 4.0, 0.0))
>>> base = reg.publish_object("reco", learner); learner.clear_dirty()
>>> _ = learner.learn_one(Event("e1", "u2", "i1", "rating", 3.0, 1.0))
>>> v2 = publish_delta(reg, "reco", DeltaBlob(parent_sha256=base.sha256, base=base.number,
...                    learner=take_delta(learner)), parent=base)
>>> version, served = reg.load_object("reco", "latest")
>>> same = served.predict_one("u2", "i1") == learner.predict_one("u2", "i1")
>>> version.number, version.format, same
(2, 'river-delta', True)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from itertools import pairwise
from typing import Any, Protocol

import msgspec

from learning.deltas import LearnerDelta, apply_delta, take_delta
from model_store import codec
from model_store.codec import DELTA_FORMAT
from model_store.errors import FormatError, IntegrityError
from model_store.records import ModelVersion
from model_store.signing import key_missing

__all__ = ["CHECKPOINT_ATTRIBUTE", "DELTA_FORMAT", "DELTA_VERSION", "DeltaBlob", "apply_blob",
           "chain_of", "dedup_tail", "load_chain", "publish_delta", "quality_diff",
           "take_delta"]

#: the ``format_version`` this code writes for deltas
DELTA_VERSION = 1
#: where a loaded checkpoint's worker state (dedup window, gate windows) rides on its learner
CHECKPOINT_ATTRIBUTE = "_lifelong_checkpoint"

Windows = dict[str, list[float]]


class DeltaBlob(msgspec.Struct, kw_only=True):
    """One delta version's bytes (see the module doc); ``dedup_len`` -1: no dedup window."""

    parent_sha256: str
    base: int
    learner: LearnerDelta
    dedup_tail: bytes = b""
    dedup_len: int = -1
    quality_set: dict[str, list[Windows]] = msgspec.field(default_factory=dict)
    quality_drop: dict[str, list[list[str]]] = msgspec.field(default_factory=dict)


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(DeltaBlob)


def encode(blob: DeltaBlob) -> bytes:
    """``blob`` as msgpack bytes."""
    return _ENCODER.encode(blob)


def decode(data: bytes) -> DeltaBlob:
    """The :class:`DeltaBlob` in ``data`` (only ever called on verified bytes)."""
    return _DECODER.decode(data)


# signed like the pickles it applies to: a delta is only read once its signature verifies
codec.register(DELTA_FORMAT, encode, decode, signed=True)


class _Store(Protocol):
    def get(self, model: str, version: Any) -> ModelVersion: ...
    def load(self, model: str, version: Any) -> tuple[ModelVersion, Any]: ...
    def publish(self, model: str, blob: bytes, *, format: str, metadata: Any = None,
                parent: int | None = None) -> ModelVersion: ...


def publish_delta(registry: _Store, model: str, blob: DeltaBlob, *, parent: ModelVersion,
                  metadata: Mapping[str, Any] | None = None, chain: int = 1,
                  chain_bytes: int = 0, data: bytes | None = None) -> ModelVersion:
    """Publish ``blob`` as the version after ``parent`` (its metadata names base and chain).

    ``chain`` counts the deltas since the base, this one included, ``chain_bytes`` their
    bytes before this one; ``data`` is ``blob`` already encoded.
    """
    if getattr(registry, "signer", None) is None:
        raise key_missing(f'publishing a delta of model "{model}"')
    if blob.parent_sha256 != parent.sha256:
        raise IntegrityError(f'model "{model}": a delta over version {parent.number} must '
                             "carry its sha256")
    data = encode(blob) if data is None else data
    meta = {**(metadata or {}), "format_version": DELTA_VERSION, "base": blob.base,
            "parent_sha256": parent.sha256, "chain": chain, "chain_bytes": chain_bytes + len(data)}
    return registry.publish(model, data, format=DELTA_FORMAT, metadata=meta,
                            parent=parent.number)


def chain_of(registry: _Store, model: str, version: ModelVersion) -> list[ModelVersion]:
    """The versions ``version``'s state is made of: its base first, ``version`` last."""
    out = [version]
    while out[-1].format == DELTA_FORMAT:
        if out[-1].parent is None:
            raise FormatError(f'model "{model}" version {out[-1].number}: a delta without a '
                              "parent")
        out.append(registry.get(model, out[-1].parent))
    out.reverse()
    return out


def load_chain(registry: _Store, model: str, version: ModelVersion) -> tuple[ModelVersion, Any]:
    """Load ``version`` as base + deltas: every part verified, each delta bound to its parent.

    Returns ``(version, learner)``; a checkpoint's worker state is brought up to date too.
    """
    versions = chain_of(registry, model, version)
    _, obj = registry.load(model, versions[0].number)
    for parent, child in pairwise(versions):
        _, blob = registry.load(model, child.number)
        if not isinstance(blob, DeltaBlob) or blob.parent_sha256 != parent.sha256:
            raise IntegrityError(f'model "{model}" version {child.number}: not a delta over '
                                 f"version {parent.number} (sha256 mismatch), refusing it")
        apply_blob(obj, blob)
    return version, obj


def apply_blob(obj: Any, blob: DeltaBlob, *, worker: bool = True) -> None:
    """Apply ``blob`` to ``obj`` (its parent's state) in place.

    With ``worker`` the dedup and gate windows a checkpoint carries are brought up to date
    too (a serving replica leaves them).
    """
    apply_delta(obj, blob.learner)
    state = getattr(obj, "__dict__", {}).get(CHECKPOINT_ATTRIBUTE)
    if not worker or state is None:
        return
    dedup, quality, *rest = state  # rest: the impression join's state (None: no join)
    if blob.dedup_len >= 0:
        joined = dedup + blob.dedup_tail
        dedup = joined[len(joined) - blob.dedup_len * 8:] if blob.dedup_len else b""
    for kind, rules in blob.quality_set.items():
        have = quality.setdefault(kind, [])
        for index, changed in enumerate(rules):
            while len(have) <= index:
                have.append({})
            have[index].update(changed)
    for kind, rules in blob.quality_drop.items():
        for index, gone in enumerate(rules):
            for user in gone:
                quality[kind][index].pop(user, None)
    obj.__dict__[CHECKPOINT_ATTRIBUTE] = (dedup, quality, *rest)


def dedup_tail(previous: bytes, current: bytes) -> bytes:
    """The ids (8 bytes each) appended to window ``previous`` to give ``current``.

    ``current == (previous + tail)[-len(current):]``; when ``current`` does not continue
    ``previous`` (a restart with another capacity), the whole of ``current``.

    >>> from array import array
    >>> ids = lambda *xs: array("Q", xs).tobytes()
    >>> dedup_tail(ids(1, 2, 3), ids(2, 3, 4, 5)) == ids(4, 5)
    True
    >>> dedup_tail(ids(1, 2), ids(7, 8)) == ids(7, 8)
    True
    """
    if len(current) < 8 or not previous:
        return current
    # where current's oldest id sits in previous: a byte search at 8-byte steps, then one
    # compare of the overlap (no array copy of the window: about half the time at 1M ids)
    first, start = current[:8], previous.find(current[:8])
    while start > 0 and start % 8:
        start = previous.find(first, start + 1)
    if start < 0:
        return current
    keep = len(previous) - start
    if not current.startswith(previous[start:]):  # the overlap, copied once
        return current
    return current[keep:]


def quality_diff(previous: Mapping[str, list[Windows]], current: Mapping[str, list[Windows]],
                 touched: Mapping[str, Sequence[Collection[str] | None]] | None = None
                 ) -> tuple[dict[str, list[Windows]], dict[str, list[list[str]]]]:
    """Per event type and rule: the user windows set or changed, and the users dropped.

    ``touched`` (:meth:`stream.quality.QualityGates.take_touched` since ``previous``): per
    type and rule, the only users whose window can differ, or None (any user): the diff
    then looks at those users only, O(events) instead of O(users tracked).

    >>> quality_diff({"*": [{"a": [0.0, 1.0], "b": [0.0, 1.0]}]},
    ...              {"*": [{"a": [0.0, 2.0], "c": [5.0, 1.0]}]})
    ({'*': [{'a': [0.0, 2.0], 'c': [5.0, 1.0]}]}, {'*': [['b']]})
    >>> quality_diff({"*": [{"a": [0.0, 1.0], "b": [0.0, 1.0]}]},
    ...              {"*": [{"a": [0.0, 2.0], "b": [0.0, 1.0]}]}, {"*": [{"a"}]})
    ({'*': [{'a': [0.0, 2.0]}]}, {})
    """
    changed: dict[str, list[Windows]] = {}
    dropped: dict[str, list[list[str]]] = {}
    for kind, rules in current.items():
        before = previous.get(kind, [])
        hints = () if touched is None else touched.get(kind, ())
        sets, drops = [], []
        for index, windows in enumerate(rules):
            old = before[index] if index < len(before) else {}
            users = hints[index] if index < len(hints) and index < len(before) else None
            if users is None:
                sets.append({u: w for u, w in windows.items() if old.get(u) != w})
                drops.append([u for u in old if u not in windows])
                continue
            sets.append({u: w for u in users if (w := windows.get(u)) is not None
                         and old.get(u) != w})
            drops.append([u for u in users if u in old and u not in windows])
        if any(sets):
            changed[kind] = sets
        if any(drops):
            dropped[kind] = drops
    return changed, dropped
