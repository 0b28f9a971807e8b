"""Publish the online learner to the model store as a new version: a base or a delta."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from consumers.checkpoint import Checkpoint
from consumers.worker import Learner
from learning.deltas import delta_capable
from learning.ranking_metrics import RankingScore
from model_store.delta import DeltaBlob, dedup_tail, publish_delta, quality_diff, take_delta
from model_store.delta import encode as encode_delta
from monitoring.freshness import version_metadata

__all__ = ["RegistryPublisher", "refusal_alarm", "score_figures"]

log = logging.getLogger(__name__)


class _Registry(Protocol):
    def publish_object(self, model: str, obj: Any, *, metadata: Any = None,
                       parent: int | None = None) -> Any: ...
    def publish(self, model: str, blob: bytes, *, format: str, metadata: Any = None,
                parent: int | None = None) -> Any: ...


class _Alarms(Protocol):
    def alarm(self, model: str, kind: str = "drift", *, detail: Any = None,
              actor: str = "") -> Any: ...


def refusal_alarm(registry: _Alarms, model: str) -> Callable[[str], None]:
    """An ``on_refused`` callback: a ``not_finite`` alarm on ``model`` in the store.

    A failure to announce it is logged, never raised.

    >>> from model_store import Registry
    >>> reg = Registry.from_url("memory://", signer=None)
    >>> refusal_alarm(reg, "reco")("score rmse is nan")
    >>> [e.detail for _, e in reg.follow("reco", after="0", timeout=0.1)]
    [{'reason': 'score rmse is nan', 'alarm': 'not_finite'}]
    """
    def raise_alarm(reason: str) -> None:
        try:
            registry.alarm(model, "not_finite", detail={"reason": reason}, actor="online")
        except Exception as exc:
            log.warning("could not raise the not_finite alarm for %s: %s", model, exc)

    return raise_alarm


def score_figures(score: Any) -> dict[str, Any]:
    """A version's ``metrics``: RMSE/MAE for a rating score, HR/NDCG/coverage@k for ranking.

    >>> from learning.ranking_metrics import RankingScore
    >>> s = RankingScore(n=5, k=10, hr=0.4, ndcg=0.3, coverage=0.2, intra_list_diversity=None,
    ...                  novelty=2.0, rolling_hr=0.4, rolling_ndcg=0.3, rolling_coverage=0.2)
    >>> sorted(score_figures(s))[:4]
    ['coverage@10', 'evaluated', 'hr@10', 'intra_list_diversity']
    """
    if not isinstance(score, RankingScore):
        return {"rmse": score.rmse, "mae": score.mae, "rolling_rmse": score.rolling_rmse,
                "rolling_mae": score.rolling_mae}
    k = score.k
    return {"evaluated": score.n, f"hr@{k}": score.hr, f"ndcg@{k}": score.ndcg,
            f"coverage@{k}": score.coverage, "intra_list_diversity": score.intra_list_diversity,
            "novelty": score.novelty, f"rolling_hr@{k}": score.rolling_hr,
            f"rolling_ndcg@{k}": score.rolling_ndcg,
            f"rolling_coverage@{k}": score.rolling_coverage}


class RegistryPublisher:
    """Sign and store the learner (a :class:`~consumers.checkpoint.Checkpoint`) as a version.

    The metadata carries the offsets the version covers, the events seen, the prequential
    scores and, for a whole version, the digest of the dedup window (``dedup_sha256``), all
    signed with the blob; ``parent`` is the previous version (at start: the version the
    learner was warm-started from).

    A River ``BiasedMF``/``FunkMF`` learner (:func:`learning.deltas.delta_capable`) publishes
    a whole version (a base, ``river-pickle``) first, then deltas (``river-delta``: the rows
    touched since the previous version, :mod:`model_store.delta`) until ``compact_after``
    deltas were published since the base, or their bytes together would pass
    ``compact_share`` of the base's size (of ``compact_floor_bytes`` while the base is
    smaller: a young, growing model is not re-based at every 50% of growth, each base a
    whole pickle that stalls learning), or the learner erased a user: then a new base.
    ``compact_after=0`` publishes every version whole; so do all other learners.

    >>> from model_store import Registry
    >>> from model_store.signing import Signer
    >>> from learning.online import OnlineLearner
    >>> from stream.schema import Event
    >>> reg = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-doc-key"))
    >>> pub = RegistryPublisher(reg, "reco", compact_after=2, compact_share=10.0)
    >>> learner = OnlineLearner()
    >>> for k in range(4):
    ...     _ = learner.learn_one(Event(f"e{k}", f"u{k}", "i", "rating", 4.0, float(k)))
    ...     _ = pub.publish(learner, {("events", 0): k + 1})
    >>> [v.format for v in reg.versions("reco")]
    ['river-pickle', 'river-delta', 'river-delta', 'river-pickle']
    """

    def __init__(self, registry: _Registry, model: str, *, parent: int | None = None,
                 compact_after: int = 100, compact_share: float = 0.5,
                 compact_floor_bytes: int = 0):
        if compact_after < 0 or compact_share <= 0 or compact_floor_bytes < 0:
            raise ValueError("compact_after and compact_floor_bytes must be >= 0 and "
                             "compact_share positive")
        self.compact_floor_bytes = compact_floor_bytes
        self.registry = registry
        self.model = model
        self.compact_after = compact_after
        self.compact_share = compact_share
        self._last: int | None = parent
        self._previous: Any = None  # the ModelVersion this process published last
        self._base: Any = None  # ... and the base its chain starts from
        self._chain, self._chain_bytes = 0, 0
        self._dedup: bytes | None = None  # the worker state the previous version holds
        self._quality: dict[str, Any] = {}
        self.bases = 0
        self.deltas = 0

    def publish(self, learner: Learner, positions: dict[tuple[str, int], int]) -> int:
        """Store ``learner`` as the next version (a base or a delta); return its number."""
        score = learner.score()
        inner = learner.learner if isinstance(learner, Checkpoint) else learner
        tags = {"learner": "online", "model_kind": learner.model_name}
        deep = getattr(inner, "deep_version", None)  # the deep model version blended in
        if deep is not None:
            tags["deep_version"] = str(deep)
        metadata = {
            "offsets": {f"{t}:{p}": o for (t, p), o in sorted(positions.items())},
            "events_seen": learner.events_seen,
            "metrics": score_figures(score),
            "tags": tags,
            **version_metadata(learner),  # newest_event_ts, for event time -> served
        }
        version = self._publish_delta(learner, inner, metadata)
        if version is None:
            digest = getattr(learner, "dedup_sha256", None)
            if digest is not None:  # a Checkpoint: the dedup window travels in the blob
                metadata["dedup_sha256"] = digest
            if self.compact_after and delta_capable(inner):
                metadata["chain"] = 0  # a base deltas will follow: subscribers keep a standby
            version = self.registry.publish_object(self.model, learner, metadata=metadata,
                                                   parent=self._last)
            self._base, self._chain, self._chain_bytes = version, 0, 0
            self.bases += 1
        else:
            self._chain += 1
            self._chain_bytes = int(version.extra.get("chain_bytes", 0))
            self.deltas += 1
        if isinstance(learner, Checkpoint):
            self._dedup, self._quality = learner.dedup, learner.quality
        clear = getattr(inner, "clear_dirty", None)
        if callable(clear):
            clear()  # the version holds every row touched so far
        self._previous = version
        self._last = version.number
        return int(version.number)

    def _publish_delta(self, learner: Any, inner: Any, metadata: dict[str, Any]) -> Any:
        """Publish a delta over the previous version, or return ``None`` if a base is due."""
        if (self._previous is None or self.compact_after == 0 or not delta_capable(inner)
                or inner._needs_base or self._chain >= self.compact_after
                or isinstance(learner, Checkpoint) != (self._dedup is not None)
                or getattr(learner, "impressions", None) is not None):  # no join state in deltas
            return None
        blob = DeltaBlob(parent_sha256=self._previous.sha256, base=self._base.number,
                         learner=take_delta(inner))
        if isinstance(learner, Checkpoint) and self._dedup is not None:
            blob.dedup_tail = dedup_tail(self._dedup, learner.dedup)
            blob.dedup_len = len(learner.dedup) // 8
            blob.quality_set, blob.quality_drop = quality_diff(self._quality, learner.quality)
        data = encode_delta(blob)
        if (self._chain_bytes + len(data)
                > self.compact_share * max(self._base.size, self.compact_floor_bytes)):
            return None
        return publish_delta(self.registry, self.model, blob, parent=self._previous,
                             metadata=metadata, chain=self._chain + 1,
                             chain_bytes=self._chain_bytes, data=data)
