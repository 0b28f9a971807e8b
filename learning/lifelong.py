"""The lifelong learner: fast and slow together, per event.

Per event the serving :class:`~learning.serving.LifelongModel` predicts (River, and the
deep side: exact shrunk user/item biases plus the frozen deep model's interaction with the
user side folded in; blended per user x item history segment), the prediction is scored
prequentially, then everything learns the event. Every ``refit_every`` events the biases
are refit over the event history this learner keeps.
With a ``finetuner`` the learner also plays the fine-tune worker's part in-process (this is
how ``lifelong evaluate --model lifelong`` replays a file): each event joins the next
round's :class:`~learning.rounds.RoundBatch` under the same hold-back rule, and every
``round_every`` events the one round :func:`learning.rounds.run_round` trains, scores the
recent and old slices (forgetting matrix, BWT) and gates against a
:class:`~learning.rounds.MemoryDeepStore`; what the gate promotes is served. Without a
finetuner the deep model comes from outside through :meth:`set_deep` (a subscriber to the
fine-tune worker's production versions).

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

from collections.abc import Mapping
from typing import Any

from learning.biases import History
from learning.blend import DeepView
from learning.finetune import FineTuner
from learning.foldin import UserVectors
from learning.forgetting import ForgettingTracker
from learning.gate import Gate
from learning.models import Recommender
from learning.prequential import Prequential, PrequentialScore
from learning.replay import ReplayBuffer
from learning.rounds import HoldBack, MemoryDeepStore, RoundBatch, RoundOutcome, run_round
from learning.serving import LifelongModel
from learning.stacking import StackedBlend
from learning.torch_models import DeepRecommender
from stream.schema import Event

__all__ = ["LifelongLearner"]


class LifelongLearner:
    """River online model + deep model with user fold-in, blended; optional periodic rounds.

    With a ``finetuner``: ``holdout_share`` of the events are held back from fine-tuning
    (River still learns them, test-then-train) to score each round, ``gate`` decides which
    rounds serve, and the tracker keeps ``max_slices`` old slices (as the worker does).
    Rounds come every ``round_every`` events, or with ``round_growth`` > 0 every
    ``max(round_every, round_growth * events seen)`` events (rounds that replay the whole
    history then cost, all together, a few times the history instead of its square).

    ``round_backoff`` > 1 spaces rounds while they do not pay: at a round's trigger, when the
    blend serves its set without the deep model (:attr:`StackedBlend.without_optional`:
    the deep side did worse than leaving it out on the events since the last refit), the
    trigger is skipped and its pending batch dropped (the deep model does not see those
    events; River, the biases and the fold-in did), and the triggers between rounds double,
    up to ``round_backoff``. The first trigger at which the blend uses the deep model again
    runs a round, and rounds come at every trigger again. Served predictions do not depend
    on the deep model while the blend leaves it out, so the saving costs no accuracy there.
    """

    def __init__(
        self,
        model: str = "BiasedMF",
        params: Mapping[str, Any] | None = None,
        *,
        seed: int = 42,
        clip: tuple[float, float] | None = None,
        window: int = 1000,
        fold_lr: float = 0.02,
        fold_l2: float = 0.05,
        user_prior: float = 3.0,
        item_prior: float = 2.0,
        refit_every: int = 5000,
        history: int = 2_000_000,
        blend_window: int = 20_000,
        segments: int = 8,
        blend_ridge: float = 100.0,
        blend_refit: int = 1000,
        user_recency: float = 0.3,
        item_recency: float = 0.1,
        spread_prior: float = 2.0,
        deep_optional: bool = True,
        finetuner: FineTuner | None = None,
        buffer: ReplayBuffer | None = None,
        gate: Gate | None = None,
        round_every: int = 10_000,
        round_growth: float = 0.0,
        round_backoff: int = 1,
        holdout_share: float = 0.1,
        max_slices: int = 8,
    ):
        if round_every < 1 or refit_every < 1 or round_growth < 0 or round_backoff < 1:
            raise ValueError("round_every, refit_every and round_backoff must be >= 1, "
                             "round_growth >= 0")
        self.model = LifelongModel(Recommender(model, params, seed=seed), clip=clip,
                                   fold_lr=fold_lr, fold_l2=fold_l2, user_prior=user_prior,
                                   item_prior=item_prior, blend_window=blend_window,
                                   segments=segments, blend_ridge=blend_ridge,
                                   blend_refit=blend_refit, user_recency=user_recency,
                                   item_recency=item_recency, spread_prior=spread_prior,
                                   deep_optional=deep_optional)
        self.model_name = self.model.model_name
        self.clip = clip
        self.finetuner = finetuner
        self.buffer = buffer if buffer is not None or finetuner is None else ReplayBuffer(
            seed=seed)
        self.gate = gate or Gate()
        self.round_every = round_every
        self.round_growth = round_growth
        self.round_backoff = round_backoff
        self._next_round: int | None = None
        self._spacing = 1  # triggers per round while the blend leaves the deep model out
        self._skipped = 0  # triggers skipped since the last round
        self.skipped_rounds = 0
        self.holdout_share = holdout_share
        self.max_slices = max_slices
        self.rounds: list[RoundOutcome] = []
        self.forgetting = ForgettingTracker(max_slices)
        self.store = MemoryDeepStore()
        self._split = HoldBack.share(holdout_share)
        self._batch = RoundBatch()
        self.refit_every = refit_every
        self._events = History(history)  # what the biases are refit on (stays here)
        self._preq = Prequential(window)
        self._preq_online = Prequential(window)
        self._preq_deep = Prequential(window)
        if finetuner is not None and finetuner.recommender.samples_trained:
            self.set_deep(finetuner.recommender)

    @classmethod
    def resume(cls, model: LifelongModel, **kwargs: Any) -> LifelongLearner:
        """A learner continuing from a published :class:`LifelongModel` (scores start over).

        ``kwargs`` configure the rest as for the constructor (``finetuner``, ``window`` ...).
        """
        learner = cls(model.online.name, model.online.params, seed=model.online.seed,
                      **{**model.config(), **kwargs})
        learner.model = model
        return learner

    @property
    def events_seen(self) -> int:
        """Events learned (over restarts)."""
        return self.model.events_seen

    def serving(self) -> LifelongModel:
        """What this learner publishes: the serving object (no trainer, no scores)."""
        return self.model

    # versions as deltas (learning.blend_delta): the serving model records its rows
    def dirty_rows(self) -> tuple[set[str], set[str]]:
        """User and item ids learned since the last version (:meth:`clear_dirty`)."""
        return self.model.dirty_rows()

    def clear_dirty(self) -> None:
        """A version now holds the whole model."""
        self.model.clear_dirty()

    def track_rows(self, on: bool) -> None:
        """Record learned ids (``on``) or not."""
        self.model.track_rows(on)

    @property
    def _needs_base(self) -> bool:
        """The next version must be whole (an erasure changed rows no delta names)."""
        return self.model._needs_base

    # serving ----------------------------------------------------------------------------
    def set_deep(self, deep: DeepRecommender | DeepView, version: int | None = None) -> None:
        """Serve a new deep model; fold-in corrections start over (it learned them).

        Safe to call from another thread than the one calling :meth:`learn_one`.
        """
        self.model.set_deep(deep, version)

    @property
    def deep(self) -> DeepView | None:
        """The deep model being served, if any."""
        return self.model.deep

    @property
    def fold(self) -> UserVectors | None:
        """The per-user vector corrections of the deep model being served."""
        return self.model.fold

    @property
    def deep_version(self) -> int | None:
        """The version (or round) of the deep model being served."""
        return self.model.deep_version

    @property
    def weights(self) -> StackedBlend:
        """The per-segment blend."""
        return self.model.weights

    def predict_one(self, user: str, item: str) -> float:
        """The blended prediction."""
        return self.model.predict_one(user, item)

    # learning ---------------------------------------------------------------------------
    def learn_one(self, event: Event) -> float:
        """Predict (blend) and score, then learn everywhere; return the blended prediction."""
        y = event.value
        model = self.model
        y_hat, p_online, p_deep = model.step(event.user_id, event.item_id, y, event.context)
        events = self._events
        if events._n < events.capacity:  # History.add, inlined (the common case)
            u, i = model.last_rows
            events._u.append(u)
            events._i.append(i)
            events._y.append(y)
            events._n += 1
        else:
            events.add(*model.last_rows, y)
        seen = model.events_seen
        if seen % self.refit_every == 0 and len(events) == seen:
            # a refit needs every event the biases learned: after a restart (or past the
            # history's capacity) the biases continue by per-event folding alone
            model.biases.refit(events)
        # Prequential.update of the blend, River and the deep side, inlined and unrolled
        preq, err = self._preq, y - y_hat
        preq._n += 1
        preq._sq += err * err
        preq._abs += abs(err)
        preq._recent.append(err)
        preq, err = self._preq_online, y - p_online
        preq._n += 1
        preq._sq += err * err
        preq._abs += abs(err)
        preq._recent.append(err)
        if p_deep is not None:
            preq, err = self._preq_deep, y - p_deep
            preq._n += 1
            preq._sq += err * err
            preq._abs += abs(err)
            preq._recent.append(err)
        if self.finetuner is None:
            return y_hat
        if self.round_growth:
            self._collect(event)
            return y_hat
        # _collect inlined (the common case): RoundBatch.add under the HoldBack rule
        split, batch = self._split, self._batch
        split.seen += 1
        samples = batch.held if split.seen % split.every == 0 else batch.fresh_samples
        samples.users.append(event.user_id)
        samples.items.append(event.item_id)
        samples.values.append(float(y))
        samples.ts.append(float(event.ts))
        if seen % self.round_every == 0:
            self._trigger()
        return y_hat

    def _collect(self, event: Event) -> None:
        self._batch.add(event, self._split.hold())
        seen = self.events_seen
        if not self.round_growth:
            if seen % self.round_every == 0:
                self._trigger()
            return
        if self._next_round is None:
            self._next_round = seen - 1 + self.round_every
        if seen >= self._next_round:
            # rounds replaying the whole history cost O(history): spaced in proportion to
            # it, their total cost stays linear in the stream's length
            self._trigger()
            self._next_round = seen + max(self.round_every, int(self.round_growth * seen))

    def _trigger(self) -> None:
        """A round is due: run it, or skip it while the blend leaves the deep model out."""
        if self.round_backoff == 1 or not self.model.weights.without_optional:
            self._spacing, self._skipped = 1, 0
            self.run_round()
            return
        self._skipped += 1
        if self._skipped < self._spacing:
            self._batch = RoundBatch()  # skipped: the next round trains on later events
            self.skipped_rounds += 1
            return
        self._spacing, self._skipped = min(2 * self._spacing, self.round_backoff), 0
        self.run_round()

    def run_round(self) -> RoundOutcome | None:
        """The one round on the pending batch; serve the candidate when the gate promotes it."""
        if self.finetuner is None or not self._batch.fresh:
            return None
        batch, self._batch = self._batch, RoundBatch()
        outcome = run_round(self.finetuner, self.buffer, batch, self.forgetting, self.gate,
                            self.store.production())
        number = self.store.publish(self.finetuner.recommender)
        if outcome.decision.promote:
            self.store.promote(number)
            production = self.store.production()
            assert production is not None
            self.set_deep(production, version=number)
        self.rounds.append(outcome)
        return outcome

    # scores -----------------------------------------------------------------------------
    def score(self) -> PrequentialScore:
        """Prequential figures of the blend."""
        return self._preq.score()

    def component_scores(self) -> dict[str, PrequentialScore]:
        """Prequential figures of each component (deep: only while a deep model served)."""
        scores = {"online": self._preq_online.score()}
        if self._preq_deep.n:
            scores["deep"] = self._preq_deep.score()
        return scores

    def bwt(self) -> float:
        """Backward transfer of the deep model over the slices (positive = forgetting)."""
        return self.forgetting.bwt()

    # erasure ----------------------------------------------------------------------------
    def forget_user(self, user: str) -> int:
        """Erase ``user`` everywhere this learner holds them; return entries removed.

        The serving model (River, biases, deep view, fold-in), and with a finetuner its id
        table, embedding and optimizer rows, the replay buffer, the retained old slices,
        the pending round batch and the in-process store's model copies
        (:mod:`learning.erasure`). The bias history keeps the user's events under an
        unlinked row number (item biases keep what the user taught them, docs/privacy.md).
        """
        from learning.erasure import forget_attached, forget_deep_user, forget_finetuner_user

        removed = self.model.forget_user(user) + forget_attached(self, user, skip=(self.model,))
        removed += forget_finetuner_user(self.finetuner, user, buffer=self.buffer,
                                         tracker=self.forgetting, batches=[self._batch])
        copies = {id(c[1]): c[1] for c in (self.store._latest, self.store._production) if c}
        removed += sum(forget_deep_user(rec, user) for rec in copies.values())
        return removed

