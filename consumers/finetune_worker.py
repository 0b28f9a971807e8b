"""The fine-tune worker (the slow learner): poll, gather, and train rounds off the poll thread.

The worker reads its own consumer group on the events topic. Each record is decoded with
:func:`stream.schema.decode`; invalid ones are only counted (the online learner's DLQ has
them already), so are those the data-quality gates refuse (the online learner quarantines
them; :mod:`stream.quality`), and duplicates (by ``event_id``) are dropped. Valid events are
appended to the pending :class:`~learning.rounds.RoundBatch`; the one hold-back rule
(:class:`~learning.slices.HoldBack`, every ``k``-th valid event, ``k = 1/holdout_share``)
keeps some back as the round's recent evaluation slice instead of training on them.
For the ranking task, ``weight`` maps each event's ``type`` to the value trained on (the
task's positive weight) and the tracker is a :class:`~learning.rank_deep.RankingTracker`.

A round starts when at least ``min_fresh`` training samples are pending and one trigger
fires: ``round_every_events`` pending events, ``round_every_seconds`` since the last round,
or a drift alarm (``alarms()`` returned something, e.g. :class:`consumers.alarms.StoreAlarms`
fed by ``Registry.alarm``). The batch is handed to a training thread
(:class:`~consumers.finetune_round.RoundRunner`: train, evaluate, gate, publish) while this
thread keeps polling, so the consumer never stalls and the group never rebalances; one round
runs at a time, and events keep accumulating for the next. When a round has published, the
poll thread commits the positions the round covers. A failed round is logged and counted,
and its events go back in front of the pending batch (nothing is committed past them).

Privacy (docs/privacy.md): with a ``pseudonymizer`` every ``user_id`` is replaced by its
pseudonym right after decoding, so the id table, the published versions, the replay buffer
and the slices hold pseudonyms only. Records of ``erasure_topic`` are erasure requests:
they are queued, no round starts while one is queued, and once the running round is in the
user leaves the fine-tuner's memory and an erased version is published
(:func:`consumers.erasure.erase_deep`). With ``replay_max_age`` the replay samples older
than that before the newest event are dropped before each round (retention).

On stop the running round is finished (or abandoned after ``stop_timeout``, uncommitted);
when the input ended (not on ``stop``) the remaining events make a ``final`` round.

>>> from consumers.deep_publisher import DeepPublisher
>>> from learning import FineTuner, ReplayBuffer, DeepRecommender
>>> from model_store import Registry
>>> from stream.source import ListSource
>>> from stream.synthetic import SyntheticStream
>>> src = ListSource(SyntheticStream(n_events=600, seed=1).raw(), batch_size=100)
>>> tuner = FineTuner(DeepRecommender(n_factors=4, clip=(1, 5)), device="cpu", batch_size=64)
>>> store = DeepPublisher(Registry.from_url("memory://", signer=None), "reco-deep")
>>> worker = FineTuneWorker(src, tuner, ReplayBuffer(1000, recent_window=100), store,
...                         round_every_events=300, min_fresh=100)
>>> stats = worker.run()
>>> [(r.trigger, r.version, r.promoted) for r in stats.rounds], src.committed
([('events', 1, True), ('final', 2, True)], {('memory', 0): 600})
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from consumers.dedup import RecentIds
from consumers.deep_publisher import DeepPublisher
from consumers.finetune_round import RoundResult, RoundRunner
from consumers.polling import PollLoop
from learning.finetune import FineTuner
from learning.forgetting import ForgettingTracker
from learning.gate import Gate
from learning.replay import ReplayBuffer
from learning.rounds import HoldBack, RoundBatch
from monitoring.metrics import FineTuneMetrics
from stream.pseudonym import Pseudonymizer
from stream.quality import QualityGates
from stream.schema import Rejected, decode
from stream.source import Record, Source

__all__ = ["FineTuneStats", "FineTuneWorker"]

log = logging.getLogger(__name__)

Alarms = Callable[[], Sequence[object]]


@dataclass
class FineTuneStats:
    """What a run did, for summaries and tests."""

    consumed: int = 0
    valid: int = 0
    invalid: int = 0
    quarantined: int = 0
    duplicates: int = 0
    erasures: int = 0
    held_out: int = 0
    alarms: int = 0
    failures: int = 0
    polls: int = 0
    polls_during_rounds: int = 0
    rounds: list[RoundResult] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0

    @property
    def versions(self) -> list[int]:
        """Versions published, in order."""
        return [r.version for r in self.rounds]

    @property
    def promotions(self) -> int:
        """Rounds whose candidate went to production."""
        return sum(r.promoted for r in self.rounds)


@dataclass
class _Job:
    batch: RoundBatch
    trigger: str
    thread: threading.Thread | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: RoundResult | None = None
    error: BaseException | None = None


class FineTuneWorker:
    """Runs poll -> gather -> (round in a thread) -> commit; see the module docstring."""

    def __init__(self, source: Source, finetuner: FineTuner, buffer: ReplayBuffer,
                 publisher: DeepPublisher, *, gate: Gate | None = None,
                 round_every_events: int = 50_000, round_every_seconds: float = 600.0,
                 holdout_share: float = 0.1, min_fresh: int = 1000,
                 metrics: FineTuneMetrics | None = None, alarms: Alarms | None = None,
                 tracker: ForgettingTracker | None = None, dedup_capacity: int = 1_000_000,
                 stop_timeout: float = 600.0, failure_backoff: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 quality: QualityGates | None = None,
                 wall_clock: Callable[[], float] = time.time,
                 pseudonymizer: Pseudonymizer | None = None,
                 erasure_topic: str | None = None, replay_max_age: float | None = None,
                 weight: Callable[[str], float] | None = None):
        if round_every_events < 1 or round_every_seconds <= 0 or min_fresh < 1:
            raise ValueError("need round_every_events >= 1, round_every_seconds > 0, "
                             "min_fresh >= 1")
        self.source = source
        self.round_every_events = round_every_events
        self.round_every_seconds = round_every_seconds
        self.holdout_share = holdout_share
        self.min_fresh = min_fresh
        self.metrics = metrics
        self.alarms = alarms
        self.stop_timeout = stop_timeout
        self.failure_backoff = failure_backoff
        self.runner = RoundRunner(finetuner, buffer, publisher, gate or Gate(), tracker=tracker,
                                  metrics=metrics)
        self._split = HoldBack.share(holdout_share)
        self._seen = RecentIds(dedup_capacity)
        # the online learner's data-quality gates: what it quarantines is never trained on
        self.quality = QualityGates.default() if quality is None else quality
        self._wall = wall_clock
        self._clock = clock
        # the ranking task: train on the weight of the event's type, not its value
        self.weight = weight
        self._batch = RoundBatch()
        self._positions: dict[tuple[str, int], int] = {}
        self._job: _Job | None = None
        self._last_round = clock()
        self._not_before = -float("inf")
        self._drift_pending = False
        self.stats = FineTuneStats(started=clock())
        # privacy (docs/privacy.md): user_id -> pseudonym right after decode; the erasure
        # topic's requests are applied between rounds, then published (_erase_pending)
        self.pseudonymizer = pseudonymizer
        self.erasure_topic = erasure_topic
        self._erasures: list[str] = []
        # retention: replay samples older than this before the newest event are dropped
        self.replay_max_age = replay_max_age
        self._newest = -float("inf")

    @property
    def pending(self) -> RoundBatch:
        """Events gathered for the next round."""
        return self._batch

    @property
    def round_running(self) -> bool:
        """Whether a round is training (or publishing) right now."""
        return self._job is not None and not self._job.done.is_set()

    # gathering --------------------------------------------------------------------
    def _accept(self, record: Record, batch: RoundBatch) -> None:
        stats, metrics = self.stats, self.metrics
        event = decode(record.value)
        if isinstance(event, Rejected):
            stats.invalid += 1
            if metrics is not None:
                metrics.invalid.inc()
            return
        if self.pseudonymizer is not None:
            event = self.pseudonymizer.apply(event)
        if self.quality.check(event, self._wall()) is not None:
            stats.quarantined += 1  # the online learner sends it to the quarantine topic
            return
        if self._seen.check_and_add(event.event_id):
            stats.duplicates += 1
            if metrics is not None:
                metrics.duplicate.inc()
            return
        stats.valid += 1
        self._newest = max(self._newest, event.ts)
        held = self._split.hold()
        stats.held_out += held
        batch.add(event, held, None if self.weight is None else self.weight(event.type))

    def process(self, records: list[Record]) -> None:
        """Decode, de-duplicate and gather one batch of records (no training, no commit)."""
        for record in records:
            self.stats.consumed += 1
            self._positions[(record.topic, record.partition)] = record.offset + 1
            if record.topic == self.erasure_topic and self.erasure_topic:
                self._request(record)
                continue
            self._accept(record, self._batch)
        if self.metrics is not None and records:
            self.metrics.consumed.inc(len(records))

    def cold_start(self, backlog: Source, *, stages: int = 3) -> RoundResult | None:
        """Train the first model from a finite ``backlog`` easy-to-hard, evaluate, publish.

        Same decoding, de-duplication and hold-back as the stream; the curriculum is
        :func:`learning.curriculum.train_curriculum` with ``stages``. Runs in this thread and
        returns the round (``None`` for an empty backlog); streaming starts afterwards.
        """
        batch = RoundBatch()
        while not backlog.exhausted:
            for record in backlog.poll():
                batch.positions[(record.topic, record.partition)] = record.offset + 1
                self._accept(record, batch)
        if not batch.fresh:
            log.warning("backlog had no valid events; nothing to train")
            return None
        result = self.runner.run(batch, "backlog", curriculum_stages=stages)
        self.stats.rounds.append(result)
        self._last_round = self._clock()
        return result

    # rounds -----------------------------------------------------------------------
    def _check_alarms(self) -> None:
        if self.alarms is None:
            return
        got = self.alarms()
        if got:
            self.stats.alarms += len(got)
            self._drift_pending = True
            log.info("%d drift alarm(s): a round starts once %d fresh events are pending",
                     len(got), self.min_fresh)

    def _due(self, now: float) -> str | None:
        if self._erasures:  # applied once the running round is in; no new round before
            return None
        if self._job is not None or self._batch.fresh < self.min_fresh or now < self._not_before:
            return None
        if self._drift_pending:
            return "drift"
        if len(self._batch) >= self.round_every_events:
            return "events"
        if now - self._last_round >= self.round_every_seconds:
            return "time"
        return None

    def _start(self, trigger: str) -> None:
        if self.replay_max_age is not None and self._newest > -float("inf"):
            dropped = self.runner.buffer.drop_older_than(self._newest - self.replay_max_age)
            if dropped:
                log.info("retention: %d replay samples older than %.0f s dropped", dropped,
                         self.replay_max_age)
        batch, self._batch = self._batch, RoundBatch()
        batch.positions = dict(self._positions)
        self._last_round = self._clock()
        self._drift_pending = False
        job = _Job(batch, trigger)
        job.thread = threading.Thread(target=self._train, args=(job,),
                                      name="finetune-round", daemon=True)
        self._job = job
        log.info("round (%s) starts: %d fresh, %d held out", trigger, batch.fresh,
                 batch.held_out)
        job.thread.start()

    def _train(self, job: _Job) -> None:
        try:
            job.result = self.runner.run(job.batch, job.trigger)
        except BaseException as exc:  # reported by the poll thread
            job.error = exc
        finally:
            job.done.set()

    def _collect(self, wait: float = 0.0,
                 on_round: Callable[[RoundResult], None] | None = None) -> None:
        job = self._job
        if job is None or not job.done.wait(wait):
            return
        self._job = None
        if job.result is None:
            self.stats.failures += 1
            if self.metrics is not None:
                self.metrics.failures.inc()
            log.error("fine-tune round (%s) failed; its %d events are retried next round",
                      job.trigger, len(job.batch), exc_info=job.error)
            self._batch = job.batch.merge_before(self._batch)
            self._drift_pending |= job.trigger == "drift"
            self._not_before = self._clock() + self.failure_backoff
            return
        self.source.commit(job.batch.positions)  # the version covering them is published
        self.stats.rounds.append(job.result)
        if on_round is not None:
            on_round(job.result)

    # the loop ---------------------------------------------------------------------
    def run(self, *, stop: threading.Event | None = None, max_events: int | None = None,
            idle_timeout: float | None = None, poll_timeout: float = 1.0,
            final_round: bool = True,
            on_batch: Callable[[FineTuneStats], None] | None = None,
            on_round: Callable[[RoundResult], None] | None = None) -> FineTuneStats:
        """Poll and train rounds until ``stop``, ``max_events`` records, exhaustion or idleness.

        ``on_batch`` runs after each poll, ``on_round`` (in this thread) after each round.
        """
        stop = stop or threading.Event()
        stats = self.stats
        loop = PollLoop(self.source, max_events=max_events, idle_timeout=idle_timeout,
                        poll_timeout=poll_timeout, clock=self._clock)
        try:
            while not stop.is_set():
                self._collect(on_round=on_round)
                self._erase_pending()
                if loop.done(stats.consumed):
                    break
                records = loop.poll(stats.consumed)
                stats.polls += 1
                stats.polls_during_rounds += self.round_running
                if records:
                    self.process(records)
                elif loop.done(stats.consumed):
                    break
                self._check_alarms()
                trigger = self._due(self._clock())
                if trigger is not None:
                    self._start(trigger)
                if on_batch is not None:
                    on_batch(stats)
        finally:
            self._finish(final_round and not stop.is_set(), on_round)
            stats.elapsed = self._clock() - stats.started
        return stats

    def _finish(self, final_round: bool, on_round: Callable[[RoundResult], None] | None) -> None:
        """Finish the running round (or abandon it after ``stop_timeout``); maybe a last one."""
        for _ in range(2):
            if self._job is not None:
                self._collect(self.stop_timeout, on_round)
                if self._job is not None:
                    log.warning("round still running after %.0f s; abandoned, not committed",
                                self.stop_timeout)
                    self._job = None
                    return
            self._erase_pending()
            if not final_round or self._batch.fresh < self.min_fresh:
                return
            final_round = False
            self._start("final")

    # erasure (docs/privacy.md) ------------------------------------------------------
    def _request(self, record: Record) -> None:
        """Queue an erasure request; malformed ones are only counted (the learner DLQs them)."""
        from consumers.erasure import decode_request

        user = decode_request(record.value)
        if user is None:
            self.stats.invalid += 1
            return
        self._erasures.append(user if self.pseudonymizer is None else self.pseudonymizer(user))

    def _erase_pending(self) -> None:
        """Apply queued erasures when no round runs: memory, replay, then publish versions."""
        if not self._erasures or self._job is not None:
            return
        from consumers.erasure import erase_deep

        ids, self._erasures = list(dict.fromkeys(self._erasures)), []
        runner = self.runner
        published = erase_deep(runner.publisher, ids, finetuner=runner.finetuner,
                               buffer=runner.buffer, tracker=runner.tracker,
                               batches=[self._batch])
        self.stats.erasures += len(ids)
        log.info("erased %d user(s) on request; versions published: %s", len(ids),
                 published or "none needed")

