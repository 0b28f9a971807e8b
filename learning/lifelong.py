"""The lifelong learner: fast and slow together, per event.

Per event: River's online model and the deep model (its item side frozen in a
:class:`~learning.blend.DeepView`, the user side folded in by SGD) both predict; the blend
(weights by recent error) is scored prequentially; then River learns, the fold-in steps,
and the event joins the fresh samples of the next fine-tune round. With a ``finetuner``,
a round runs every ``round_every`` events (synchronously: this is how ``lifelong
evaluate --model lifelong`` replays a file with the production code); without one, the
deep model comes from outside through :meth:`set_deep` (a subscriber to the fine-tune
worker's versions). After each round the deep model is scored on a held-back share of
every slice seen so far, giving the forgetting matrix and BWT.

>>> from stream.synthetic import SyntheticStream
>>> from learning.finetune import FineTuner
>>> from learning.torch_models import DeepRecommender
>>> deep = DeepRecommender(n_factors=8, clip=(1.0, 5.0), seed=0)
>>> learner = LifelongLearner(clip=(1.0, 5.0), round_every=1000,
...                           finetuner=FineTuner(deep, device="cpu", epochs_per_round=2))
>>> for ev in SyntheticStream(n_events=3000, drift_at=(), seed=2):
...     _ = learner.learn_one(ev)
>>> len(learner.rounds), sorted(learner.component_scores())
(3, ['deep', 'online'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from learning.blend import BlendWeights, DeepView, FoldIn
from learning.finetune import FineTuner, RoundReport
from learning.forgetting import ForgettingTracker
from learning.models import clip
from learning.online import OnlineLearner
from learning.prequential import Prequential, PrequentialScore
from learning.replay import ReplayBuffer
from learning.torch_models import DeepRecommender
from stream.schema import Event

__all__ = ["LifelongLearner"]


class _Slice:
    """Held-back events of one round's stretch, for forgetting evaluation."""

    def __init__(self) -> None:
        self.users: list[str] = []
        self.items: list[str] = []
        self.values: list[float] = []


class LifelongLearner:
    """River online model + deep model with user fold-in, blended; optional periodic rounds.

    ``holdout_every``: every k-th event is held back from fine-tuning (River still learns
    it, test-then-train) to measure forgetting on each slice, up to ``max_holdout`` per
    slice and ``max_slices`` slices.
    """

    def __init__(
        self,
        model: str = "BiasedMF",
        params: Mapping[str, Any] | None = None,
        *,
        seed: int = 42,
        clip: tuple[float, float] | None = None,
        window: int = 1000,
        fold_lr: float = 0.05,
        fold_l2: float = 0.02,
        blend_window: int = 500,
        finetuner: FineTuner | None = None,
        buffer: ReplayBuffer | None = None,
        round_every: int = 10_000,
        holdout_every: int = 10,
        max_holdout: int = 2000,
        max_slices: int = 50,
    ):
        if round_every < 1 or holdout_every < 2:
            raise ValueError("round_every must be >= 1 and holdout_every >= 2")
        self.online = OnlineLearner(model, params, seed=seed, clip=clip, window=window)
        self.model_name = f"lifelong:{model}"
        self.clip = clip
        self.finetuner = finetuner
        self.buffer = buffer if buffer is not None or finetuner is None else ReplayBuffer(
            seed=seed)
        self.round_every = round_every
        self.holdout_every = holdout_every
        self.max_holdout = max_holdout
        self.max_slices = max_slices
        self.fold_lr = fold_lr
        self.fold_l2 = fold_l2
        self.weights = BlendWeights(window=blend_window)
        # (view, fold-in, version), swapped as one reference so a deep model arriving from
        # another thread (a subscriber) never pairs with the previous model's corrections
        self._serving: tuple[DeepView, FoldIn, int | None] | None = None
        self.events_seen = 0
        self.rounds: list[RoundReport] = []
        self.forgetting = ForgettingTracker()
        self._preq = Prequential(window)
        self._preq_deep = Prequential(window)
        self._fresh: tuple[list[str], list[str], list[float], list[float]] = ([], [], [], [])
        self._slices: list[_Slice] = [_Slice()]
        if finetuner is not None and finetuner.recommender.samples_trained:
            self.set_deep(finetuner.recommender)

    # serving ----------------------------------------------------------------------------
    def set_deep(self, deep: DeepRecommender | DeepView, version: int | None = None) -> None:
        """Serve a new deep model; fold-in corrections start over (it learned them).

        Safe to call from another thread than the one calling :meth:`learn_one`.
        """
        view = deep if isinstance(deep, DeepView) else DeepView.of(deep)
        self._serving = (view, FoldIn(self.fold_lr, self.fold_l2), version)

    @property
    def deep(self) -> DeepView | None:
        """The deep model being served, if any."""
        return self._serving[0] if self._serving else None

    @property
    def fold(self) -> FoldIn | None:
        """The per-user corrections of the deep model being served."""
        return self._serving[1] if self._serving else None

    @property
    def deep_version(self) -> int | None:
        """The version (or round) of the deep model being served."""
        return self._serving[2] if self._serving else None

    def _blend(self, p_online: float, p_deep: float | None) -> float:
        if p_deep is None:
            return p_online
        return clip(self.weights.blend(p_online, p_deep), self.clip)

    def predict_one(self, user: str, item: str) -> float:
        """The blended prediction."""
        serving = self._serving
        p_deep = serving[0].predict(user, item, serving[1]) if serving else None
        return self._blend(self.online.predict_one(user, item), p_deep)

    # learning ---------------------------------------------------------------------------
    def learn_one(self, event: Event) -> float:
        """Predict (blend) and score, then learn everywhere; return the blended prediction."""
        user, item, y = event.user_id, event.item_id, event.value
        serving = self._serving
        p_deep = serving[0].predict(user, item, serving[1]) if serving else None
        p_online = self.online.learn_one(event)  # predicts before learning, scores itself
        y_hat = self._blend(p_online, p_deep)
        self._preq.update(y, y_hat)
        if serving is not None and p_deep is not None:
            self._preq_deep.update(y, p_deep)
            self.weights.update(y, p_online, p_deep)
            serving[1].update(serving[0], user, item, y)
        self.events_seen += 1
        if self.finetuner is not None:
            self._collect(event)
        return y_hat

    def _collect(self, event: Event) -> None:
        if self.events_seen % self.holdout_every == 0:
            held = self._slices[-1]
            if len(held.users) < self.max_holdout:
                held.users.append(event.user_id)
                held.items.append(event.item_id)
                held.values.append(event.value)
        else:
            for column, value in zip(self._fresh, (event.user_id, event.item_id, event.value,
                                                   event.ts), strict=True):
                column.append(value)  # type: ignore[attr-defined]
        if self.events_seen % self.round_every == 0:
            self.run_round()

    def run_round(self) -> RoundReport | None:
        """Fine-tune on the fresh samples (+ replay), serve the result, score forgetting."""
        if self.finetuner is None or not self._fresh[0]:
            return None
        users, items, values, ts = self._fresh
        report = self.finetuner.round(users, items, np.asarray(values, dtype=np.float32),
                                      np.asarray(ts, dtype=np.float64), self.buffer)
        self._fresh = ([], [], [], [])
        self.rounds.append(report)
        self.set_deep(self.finetuner.recommender, version=len(self.rounds))
        slices = [s for s in self._slices if s.users]
        if slices:
            self.forgetting.evaluate(self.finetuner.recommender,
                                     [(s.users, s.items, s.values) for s in slices])
        if len(self._slices) < self.max_slices:
            self._slices.append(_Slice())
        return report

    # scores -----------------------------------------------------------------------------
    def score(self) -> PrequentialScore:
        """Prequential figures of the blend."""
        return self._preq.score()

    def component_scores(self) -> dict[str, PrequentialScore]:
        """Prequential figures of each component (deep: only while a deep model served)."""
        scores = {"online": self.online.score()}
        if self._preq_deep.n:
            scores["deep"] = self._preq_deep.score()
        return scores

    def bwt(self) -> float:
        """Backward transfer of the deep model over the slices (positive = forgetting)."""
        return self.forgetting.bwt() if len(self.forgetting.matrix) > 1 else math.nan

    def __getstate__(self) -> dict[str, Any]:
        # What serves travels (River, deep view, fold-in, weights); the trainer, its buffer
        # and the held-back slices stay with the process that trains.
        state = self.__dict__.copy()
        state.update(finetuner=None, buffer=None, _fresh=([], [], [], []), _slices=[_Slice()])
        return state
