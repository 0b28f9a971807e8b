"""Publish the online learner to the model store as a new version."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from consumers.worker import Learner
from learning.ranking_metrics import RankingScore
from monitoring.freshness import version_metadata

__all__ = ["RegistryPublisher", "refusal_alarm", "score_figures"]

log = logging.getLogger(__name__)


class _Registry(Protocol):
    def publish_object(self, model: str, obj: Any, *, metadata: Any = None,
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
    """Pickle, sign and store the learner (a :class:`~consumers.checkpoint.Checkpoint`).

    The metadata carries the offsets the version covers, the events seen, the prequential
    scores and the digest of the dedup window (``dedup_sha256``), all signed with the blob;
    ``parent`` is the version the learner was warm-started from.
    """

    def __init__(self, registry: _Registry, model: str, *, parent: int | None = None):
        self.registry = registry
        self.model = model
        self._last: int | None = parent

    def publish(self, learner: Learner, positions: dict[tuple[str, int], int]) -> int:
        """Store ``learner`` as the next version; return its number."""
        score = learner.score()
        metadata = {
            "offsets": {f"{t}:{p}": o for (t, p), o in sorted(positions.items())},
            "events_seen": learner.events_seen,
            "metrics": score_figures(score),
            "tags": {"learner": "online", "model_kind": learner.model_name},
            **version_metadata(learner),  # newest_event_ts, for event time -> served
        }
        digest = getattr(learner, "dedup_sha256", None)
        if digest is not None:  # a Checkpoint: the dedup window travels in the blob
            metadata["dedup_sha256"] = digest
        version = self.registry.publish_object(self.model, learner, metadata=metadata,
                                               parent=self._last)
        self._last = version.number
        return int(version.number)
