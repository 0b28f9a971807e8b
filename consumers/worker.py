"""The learner worker: wires a :class:`~stream.source.Source` to the online learner.

For each batch: decode and validate every record; refused ones go to the dead letters
with their reason; valid events that a data-quality gate refuses (:mod:`stream.quality`:
a value off the scale, a ``ts`` in the future, a bot burst) go to the quarantine, never
learned; duplicates (by ``event_id``) are dropped; the rest are learned
(predict, score, learn). Then, if due, the dead letters and quarantine are flushed and a
model version is published: a :class:`~consumers.checkpoint.Checkpoint` (the learner and
the dedup window) with the positions it covers, the resume point of a restarted learner.
Kafka's offsets are committed after it (for lag monitoring; a failed commit is counted,
never fatal). A version is due after ``publish_every_events`` events or
``publish_every_seconds`` since the previous one started (so versions come every
``publish_every_seconds`` while a publish is shorter than that), whichever first, within a
floor: publishing draws on a budget
of time that grows by ``publish_max_share`` of the elapsed time (up to
``publish_burst_seconds``), and none is due while it is spent, so over any run publishing
takes at most that share of the time plus the burst (1.0 here: no floor; ``lifelong
learn``: ``LIFELONG_PUBLISH_MAX_SHARE``, 0.1; docs/publishing.md). Without a publisher
(evaluation), every batch is committed.

The same worker runs over Kafka (``lifelong learn``) and over a file (``lifelong
evaluate``):

>>> from stream.source import ListSource, ListDeadLetters
>>> from learning.online import OnlineLearner
>>> src = ListSource([b'{"event_id":"1","user_id":"u","item_id":"i","type":"rating",'
...                   b'"value":4,"ts":1}', b'not json'])
>>> dlq = ListDeadLetters()
>>> stats = LearnerWorker(src, OnlineLearner(), dlq).run()
>>> stats.learned, stats.invalid, dlq.items[0][1].split(":")[0], src.committed
(1, 1, 'malformed', {('memory', 0): 2})
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import add as _add
from operator import attrgetter
from typing import TYPE_CHECKING, Protocol

from consumers.dedup import RecentIds
from consumers.polling import PollLoop
from learning.prequential import PrequentialScore
from stream.quality import QualityGates
from stream.schema import Decoded, Event, Rejected, decode
from stream.source import DeadLetters, Record, Source

if TYPE_CHECKING:  # types only: a worker without a publisher or monitors does not import them
    # (consumers.checkpoint pulls the model store and learning.deltas, monitoring.drift scipy:
    # about 2 s of `lifelong evaluate`'s start-up)
    from consumers.checkpoint import Checkpoint
    from consumers.impressions import ImpressionFeed
    from monitoring.drift import ErrorDrift
    from monitoring.freshness import LearnerFreshness
    from monitoring.input_drift import InputDriftWatch
    from monitoring.metrics import LearnerMetrics
    from stream.pseudonym import Pseudonymizer

__all__ = ["Learner", "LearnerWorker", "Publisher", "WorkerStats"]

log = logging.getLogger(__name__)

Positions = dict[tuple[str, int], int]

# a record's fields read in C over a batch (LearnerWorker._place, the latency observe)
_partition_of, _offset_of = attrgetter("topic", "partition"), attrgetter("offset")
_timestamp_of = attrgetter("timestamp")


def _abs_error(event: Event, y_pred: float) -> float:
    return abs(event.value - y_pred)


class Learner(Protocol):
    """What the worker drives (``OnlineLearner``, ``LifelongLearner``)."""

    model_name: str
    events_seen: int

    def learn_one(self, event: Event) -> float:
        """Predict, score, learn; return the prediction made before learning."""
        ...

    def score(self) -> PrequentialScore:
        """Prequential figures so far."""
        ...


class Publisher(Protocol):
    """Publishes the learner's model as a new version; returns the version number."""

    def publish(self, learner: Learner, positions: Positions) -> int:
        """Store a version covering everything before ``positions``."""
        ...


@dataclass
class WorkerStats:
    """What a run did, for summaries and reports."""

    consumed: int = 0
    learned: int = 0
    invalid: int = 0
    duplicates: int = 0
    versions: list[int] = field(default_factory=list)
    invalid_by_kind: dict[str, int] = field(default_factory=dict)
    drift_alarms: list[int] = field(default_factory=list)
    publish_failures: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    refused_publishes: int = 0
    commit_failures: int = 0
    erasures: int = 0
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0
    # per version published: (start on the worker's clock, seconds it took, seconds a due
    # version was held by the floor before it): where the time between versions goes
    publish_times: list[tuple[float, float, float]] = field(default_factory=list)
    # seconds in all of the worker's own steps of publishing (the publisher's: its timings)
    publish_steps: dict[str, float] = field(default_factory=lambda: {
        "check": 0.0, "checkpoint": 0.0, "publisher": 0.0, "commit": 0.0})

    @property
    def events_per_second(self) -> float:
        """Consumed records per second of wall time."""
        return self.consumed / self.elapsed if self.elapsed > 0 else 0.0


def _step(steps: dict[str, float], name: str, since: float) -> float:
    """Add the time since ``since`` to ``steps[name]``; return now (``perf_counter``)."""
    now = time.perf_counter()
    steps[name] += now - since
    return now


class LearnerWorker:
    """Runs the poll -> validate -> learn -> publish -> commit loop."""

    def __init__(
        self,
        source: Source,
        learner: Learner,
        dead_letters: DeadLetters,
        *,
        publisher: Publisher | None = None,
        publish_every_events: int = 1000,
        publish_every_seconds: float = 30.0,
        metrics: LearnerMetrics | None = None,
        dedup_capacity: int = 1_000_000,
        drift: ErrorDrift | None = None,
        on_drift: Callable[[int], None] | None = None,
        start_positions: Mapping[tuple[str, int], int] | None = None,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        quality: QualityGates | None = None,
        quarantine: DeadLetters | None = None,
        on_refused: Callable[[str], None] | None = None,
        input_drift: InputDriftWatch | None = None,
        freshness: LearnerFreshness | None = None,
        pseudonymizer: Pseudonymizer | None = None,
        erasure_topic: str | None = None,
        publish_max_share: float = 1.0,
        publish_burst_seconds: float = 1.0,
        impressions: ImpressionFeed | None = None,
        publish_unheld_erasures: bool = True,
    ):
        if publish_every_events < 1:
            raise ValueError(f"publish_every_events must be >= 1, got {publish_every_events}")
        if publish_every_seconds <= 0:
            raise ValueError(f"publish_every_seconds must be > 0, got {publish_every_seconds}")
        self.source = source
        self.learner = learner
        self.dead_letters = dead_letters
        self.publisher = publisher
        self.publish_every_events = publish_every_events
        self.publish_every_seconds = publish_every_seconds
        if not 0 < publish_max_share <= 1:
            raise ValueError(f"publish_max_share must be in (0, 1], got {publish_max_share}")
        # the floor: a budget of publishing time, refilled at publish_max_share per second
        self.publish_max_share = publish_max_share
        self.publish_burst_seconds = publish_burst_seconds
        self._budget, self._budget_at = publish_burst_seconds, clock()
        self.metrics = metrics
        self._seen = RecentIds(dedup_capacity)
        # the drift detector's input: the learner's own loss (ranking) or |value - prediction|
        self._loss: Callable[[Event, float], float | None] = getattr(learner, "loss", _abs_error)
        self.drift = drift
        self.on_drift = on_drift
        self.input_drift = input_drift  # input and score drift (monitoring.input_drift)
        self.freshness = freshness  # event time -> learned -> published (monitoring.freshness)
        self.retry_seconds = retry_seconds
        # data-quality gates (None: the defaults); refused events go to ``quarantine``
        # (None: the dead letters, with a ``quarantine`` reason)
        self.quality = QualityGates.default() if quality is None else quality
        self.quarantine = quarantine
        self.on_refused = on_refused
        self._retry_at = -float("inf")
        self._clock = clock
        self._wall = wall_clock
        # what the learner covers: a restored snapshot's offsets, then every record learned
        self._positions: Positions = dict(start_positions or {})
        self._current: Record | None = None  # the record being handled, not yet placed
        self._covered: Positions = dict(self._positions)  # what the last version covers
        self._since_publish = 0
        self._last_publish = clock()  # when the last publish started (the cadence's origin)
        self._held_since: float | None = None  # a due version the floor holds, since when
        # the events learned in the batch being handled, and the predictions made for them
        self._batch_events: list[Event] = []
        self._batch_preds: list[float] = []
        self.stats = WorkerStats(started=clock())
        self.pseudonymizer = pseudonymizer  # user_id -> keyed hash right after decode
        self.erasure_topic = erasure_topic  # its records are erasure requests (docs/privacy.md)
        # False (a shard): a request for a user this learner does not hold publishes nothing
        self.publish_unheld_erasures = publish_unheld_erasures
        # the ranking task's feedback loop: impressions joined to clicks, unclicked = negatives
        self.impressions = impressions

    @property
    def publisher(self) -> Publisher | None:
        """What publishes versions; ``None``: nothing does, so the learner keeps no dirty rows."""
        return self._publisher

    @publisher.setter
    def publisher(self, publisher: Publisher | None) -> None:
        self._publisher = publisher
        track = getattr(self.learner, "track_rows", None)  # learning.deltas reads, publish clears
        if callable(track):
            track(publisher is not None)

    def process(self, records: list[Record]) -> None:
        """Validate and learn one batch (no commit, no publish).

        Every record ends in exactly one place: learned, duplicate, dead letters or
        quarantine. One whose handling raises goes to the dead letters (reason ``error:``)
        and the batch goes on. The resume position moves past a record only once it is in
        its place; the dead letters are made durable before a version covers them.
        """
        start = 0
        while start < len(records):
            chunk = records if start == 0 else records[start:]
            consumed, learned = self.stats.consumed, self.stats.learned
            try:
                self._process(chunk)
                return
            except Exception as exc:
                start += self._failed(exc, chunk, self.stats.consumed - consumed, learned)

    def _failed(self, exc: Exception, chunk: list[Record], consumed: int,
                learned_before: int) -> int:
        """Dead-letter the record whose handling raised; return how many were consumed.

        The ``consumed - 1`` records before it in ``chunk`` are in their places: the
        resume position moves past them, and the events learned among them reach the
        drift detectors as a whole batch would.
        """
        record, self._current = self._current, None
        if record is None:
            raise exc
        self._place(chunk[: consumed - 1])
        self._after_learning()
        reason = f"error: {type(exc).__name__}: {exc}"[:1000]
        log.error("%s[%d] offset %d: %s; sent to the dead letters", record.topic,
                  record.partition, record.offset, reason, exc_info=exc)
        stats = self.stats
        stats.invalid += 1
        stats.invalid_by_kind["error"] = stats.invalid_by_kind.get("error", 0) + 1
        self.dead_letters.put(record, reason)  # if this raises too, the record stays unplaced
        self._positions[(record.topic, record.partition)] = record.offset + 1
        if self.metrics is not None:
            self.metrics.invalid("error").inc()
            self.metrics.consumed.inc(consumed)
            self.metrics.learned.inc(stats.learned - learned_before)
        return consumed

    def _place(self, records: list[Record]) -> None:
        """``records`` (in order) are in their places: the resume position moves past them."""
        # in C: each record's (topic, partition) -> offset + 1, the last record's winning
        self._positions.update(zip(map(_partition_of, records),
                                   map(_add, map(_offset_of, records), repeat(1)), strict=True))

    def _after_learning(self) -> None:
        """Hand the events learned since the last call to the counters and detectors.

        Once a batch (or the part of one before a failing record or an erasure request,
        so that no event of an erased user reaches a window after it): the publish counter,
        the freshness clock (event time -> learned, one clock read a batch),
        the error drift detector (alarms at the event that raised them), the input drift
        windows. The detectors see the same events in the same order as one at a time.
        """
        events, preds = self._batch_events, self._batch_preds
        if not events:
            return
        self._batch_events, self._batch_preds = [], []
        self._since_publish += len(events)
        learned_before = self.stats.learned - len(events)
        if self.drift is not None:
            loss = self._loss
            if loss is _abs_error:
                errors = [abs(e.value - p) for e, p in zip(events, preds, strict=True)]
                at = None
            else:  # a ranking loss may be None (not ranked): those are not fed
                pairs = [(k, loss(e, p)) for k, (e, p) in enumerate(zip(events, preds,
                                                                       strict=True))]
                kept = [(k, x) for k, x in pairs if x is not None]
                errors, at = [x for _, x in kept], [k for k, _ in kept]
            for i in self.drift.alarms_in(errors):
                self._alarm(learned_before + 1 + (i if at is None else at[i]))
        if self.input_drift is not None:
            self.input_drift.observe_many(events, preds)
        if self.freshness is not None:
            self.freshness.learned_many([e.ts for e in events])

    def _process(self, records: list[Record]) -> None:
        stats, metrics = self.stats, self.metrics
        learned_before = stats.learned
        now = self._wall()
        if self.impressions is not None:  # a batch's impressions before its events (the join)
            records = self.impressions.order(records)
        erasure_topic, impressions = self.erasure_topic, self.impressions
        impressions_topic = None if impressions is None else impressions.topic
        pseudonymizer = self.pseudonymizer
        check, seen = self.quality.check, self._seen.check_and_add
        learn_one = self.learner.learn_one
        # the batch lists' appends, read once (again after an erasure, which hands them on)
        add_event, add_pred = self._batch_events.append, self._batch_preds.append
        for record in records:
            self._current = record
            stats.consumed += 1
            topic = record.topic
            if topic == erasure_topic:
                self._erase(record)
                add_event, add_pred = self._batch_events.append, self._batch_preds.append
                continue
            if topic == impressions_topic:
                impressions.record(record.value)  # type: ignore[union-attr]
                continue
            # a source that parsed the row itself (a file) hands over the decoded event
            result = record.event if isinstance(record, Decoded) else None
            if result is None:
                result = decode(record.value)
            if result.__class__ is Rejected:
                stats.invalid += 1
                kind = result.kind  # type: ignore[union-attr]
                stats.invalid_by_kind[kind] = stats.invalid_by_kind.get(kind, 0) + 1
                self.dead_letters.put(record, result.reason)  # type: ignore[union-attr]
                if metrics is not None:
                    metrics.invalid(kind).inc()
                continue
            if pseudonymizer is not None:
                result = pseudonymizer.apply(result)
            bad = check(result, now)
            if bad is not None:
                self._quarantine(record, bad)
                continue
            if seen(result.event_id):
                stats.duplicates += 1
                if metrics is not None:
                    metrics.duplicate.inc()
                continue
            y_pred = learn_one(result)
            stats.learned += 1
            add_event(result)
            add_pred(y_pred)
            if impressions is not None:
                impressions.event(result)
        self._current = None
        self._place(records)
        if impressions is not None:
            impressions.end_batch()
        try:  # every record is in its place: a failing detector is logged, learning goes on
            self._after_learning()
        except Exception:
            log.exception("drift detection of %s failed for a batch", self.learner.model_name)
        if self.input_drift is not None and records:
            self.input_drift.end_batch()
        if metrics is not None and records:
            metrics.consumed.inc(len(records))
            metrics.learned.inc(stats.learned - learned_before)
            # one observe a batch (not an event): its oldest record's age, once all are learned
            stamps = [t for t in map(_timestamp_of, records) if t is not None]
            if stamps and stats.learned > learned_before:
                metrics.latency.observe(max(0.0, self._wall() - min(stamps)))
            score = self.learner.score()
            if isinstance(score, PrequentialScore):  # rating figures (ranking: later step)
                metrics.rmse.set(score.rmse)
                metrics.mae.set(score.mae)
                metrics.rolling_rmse.set(score.rolling_rmse)
                metrics.rolling_mae.set(score.rolling_mae)

    def _quarantine(self, record: Record, reason: str) -> None:
        kind = reason.split(":", 1)[0]
        stats = self.stats
        stats.quarantined += 1
        stats.quarantined_by_reason[kind] = stats.quarantined_by_reason.get(kind, 0) + 1
        if self.quarantine is not None:
            self.quarantine.put(record, reason)
        else:
            self.dead_letters.put(record, f"quarantine: {reason}")
        if self.metrics is not None:
            self.metrics.quarantined(kind).inc()

    def _alarm(self, at: int) -> None:
        self.stats.drift_alarms.append(at)
        log.warning("drift alarm for %s after %d events: the error rose",
                    self.learner.model_name, at)
        if self.metrics is not None:
            self.metrics.drift_alarms.inc()
        if self.on_drift is not None:
            try:  # after the batch's records are placed: a failing callback stops nothing
                self.on_drift(at)
            except Exception:
                log.exception("the drift alarm callback of %s failed", self.learner.model_name)

    def checkpoint(self) -> Checkpoint:
        """The learner with the dedup window and gate state: what a version stores."""
        from consumers.checkpoint import Checkpoint

        return Checkpoint(self.learner, self._seen.snapshot(), self.quality.snapshot(),
                          None if self.impressions is None else self.impressions.snapshot())

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue from a published checkpoint's dedup window and gate state."""
        self._seen = RecentIds.restore(checkpoint.dedup, self._seen.capacity)
        self.quality.restore(checkpoint.quality)
        if self.impressions is not None and checkpoint.impressions is not None:
            self.impressions.restore(checkpoint.impressions)

    def _nothing_new(self) -> bool:
        """Nothing learned, nor any record placed elsewhere, since the last version."""
        return self._since_publish == 0 and self._positions == self._covered

    def _due_at(self) -> float | None:
        """When the pending version is due on the worker's clock, before the floor.

        ``None``: nothing to publish (no publisher, or nothing new since the last version).
        Due at once (``-inf``) after ``publish_every_events`` events, else
        ``publish_every_seconds`` after the last publish started; never before a retry's
        back-off ends. :meth:`_publish_due` and :meth:`poll_wait` both read it.
        """
        if self.publisher is None or self._nothing_new():
            return None
        due = (-float("inf") if self._since_publish >= self.publish_every_events
               else self._last_publish + self.publish_every_seconds)
        return max(due, self._retry_at)

    def _publish_due(self) -> bool:
        due = self._due_at()
        if due is None:
            return False
        now = self._clock()
        if now < due:
            return False
        if not self._budget_left(now):  # due, but the floor holds it
            if self._held_since is None:
                self._held_since = now
            return False
        return True

    def poll_wait(self, longest: float) -> float:
        """How long the next poll may wait for records: not past a pending version's due time.

        Once something is learned, a topic that goes quiet (a pause, the end of a backlog)
        must not hold the version back for a whole poll timeout: it is published at the
        cadence (or when the floor or a retry allows), as under steady traffic.
        """
        due = self._due_at()
        if due is None:
            return longest
        if self._budget <= 0:  # the floor holds it until the budget refills
            due = max(due, self._budget_at - self._budget / self.publish_max_share)
        return min(longest, max(due - self._clock(), 0.001))

    @property
    def positions(self) -> Positions:
        """Where this worker resumes: the next offset of every partition it has placed."""
        return dict(self._positions)

    def maybe_publish(self) -> int | None:
        """Publish if a version is due (``publish_every_events`` / ``_seconds``)."""
        return self.publish() if self._publish_due() else None

    def _budget_left(self, now: float) -> bool:
        """Refill the publishing budget up to ``now``; whether any is left."""
        self._budget = min(self.publish_burst_seconds,
                           self._budget + self.publish_max_share * (now - self._budget_at))
        self._budget_at = now
        return self._budget > 0

    def publish(self) -> int | None:
        """Publish a version now if anything was learned since the last one.

        If the store fails (Redis down, a restart), learning goes on: nothing is committed,
        the failure is logged and counted, and the publish is retried after
        ``retry_seconds``. Events learned meanwhile are covered by the next version; if the
        process dies first, a restart resumes from the last version and re-learns them.
        """
        if self.publisher is None or self._nothing_new():
            return None
        # the floor counts the whole of it, the finite check included
        started, steps, at = self._clock(), self.stats.publish_steps, time.perf_counter()
        if self._refuse_non_finite():
            return None
        try:
            at = _step(steps, "check", at)
            self._flush_places()  # a version covers a refused record only once it is durable
            covered = dict(self._positions)
            checkpoint = self.checkpoint()
            checkpoint.quality_touched = self.quality.take_touched()  # since the last call
            at = _step(steps, "checkpoint", at)
            version = self.publisher.publish(checkpoint, covered)  # its own split: .timings
            at = _step(steps, "publisher", at)
        except Exception as exc:  # any store failure: keep learning, retry later
            self.stats.publish_failures += 1
            self._retry_at = self._clock() + self.retry_seconds
            if self.metrics is not None:
                self.metrics.publish_failures.inc()
            log.error("publishing %s failed (%s: %s); learning goes on, retry in %.0f s",
                      self.learner.model_name, type(exc).__name__, exc, self.retry_seconds)
            return None
        self._covered = covered
        if self.freshness is not None:
            self.freshness.published()
        self._since_publish = 0
        self._last_publish, ended = started, self._clock()
        self._budget_left(ended)
        self._budget -= ended - started  # the floor: time spent publishing
        held, self._held_since = (0.0 if self._held_since is None
                                  else started - self._held_since), None
        self.stats.versions.append(version)
        self.stats.publish_times.append((started, ended - started, held))
        if self.metrics is not None:
            self.metrics.publish_duration.observe(ended - started)
            self.metrics.version.set(version)
            self.metrics.published.set(self._wall())
        log.info("published %s version %d after %d events", self.learner.model_name, version,
                 self.learner.events_seen)
        self._commit_after_publish()
        _step(steps, "commit", at)
        return version

    def _commit_after_publish(self) -> None:
        """Commit the positions the new version covers; a failure does not stop learning.

        The version (its offsets) is the resume point; Kafka's committed offsets only serve
        lag monitoring and tools, so a failed commit (a broker outage, a rebalance after a
        slow publish) is counted and logged, and the next publish commits again.
        """
        try:
            self.commit()
        except Exception as exc:
            self.stats.commit_failures += 1
            if self.metrics is not None:
                self.metrics.commit_failures.inc()
            log.warning("committing offsets for %s failed (%s: %s); the published version "
                        "holds them, the next publish commits again", self.learner.model_name,
                        type(exc).__name__, exc)

    def _refuse_non_finite(self) -> bool:
        """Refuse to publish a model with a NaN or infinity; the last good version stays."""
        from consumers.checkpoint import publish_non_finite

        why = publish_non_finite(self.learner)  # the rows touched since, or a full walk
        if why is None:
            return False
        self.stats.refused_publishes += 1
        self._retry_at = self._clock() + self.retry_seconds
        if self.metrics is not None:
            self.metrics.publish_refused.inc()
        log.error("not publishing %s: %s; the last good version keeps serving",
                  self.learner.model_name, why)
        if self.on_refused is not None:
            self.on_refused(why)
        return True

    def _flush_places(self) -> None:
        self.dead_letters.flush()
        if self.quarantine is not None:
            self.quarantine.flush()

    def commit(self) -> None:
        """Flush dead letters and quarantine, then commit every position processed so far."""
        if self._positions:
            self._flush_places()
            self.source.commit(dict(self._positions))

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        max_events: int | None = None,
        idle_timeout: float | None = None,
        poll_timeout: float = 1.0,
        on_batch: Callable[[WorkerStats], None] | None = None,
    ) -> WorkerStats:
        """Poll, learn, publish and commit until there is reason to stop.

        Stops when the source is exhausted, ``stop`` is set, ``max_events`` records were
        consumed, or nothing arrived for ``idle_timeout`` seconds (not counting time spent
        waiting for a consumer group to assign partitions: after a crash the group waits
        for the dead member's session to time out). Publishes a final
        version and commits before returning, also on error.
        """
        stop = stop or threading.Event()
        loop = PollLoop(self.source, max_events=max_events, idle_timeout=idle_timeout,
                        poll_timeout=poll_timeout, clock=self._clock)
        try:
            while not stop.is_set() and not loop.done(self.stats.consumed):
                records = loop.poll(self.stats.consumed, timeout=self.poll_wait(poll_timeout))
                if records:
                    self.process(records)
                elif loop.done(self.stats.consumed):
                    break
                if self._publish_due():
                    self.publish()
                elif records and self.publisher is None:
                    self.commit()
                if on_batch is not None:
                    on_batch(self.stats)
        finally:
            if self.publisher is None:
                self.commit()
            else:
                self.publish()
            self.stats.elapsed = self._clock() - self.stats.started
        return self.stats

    def _erase(self, record: Record) -> None:
        """An erasure request: forget the user now, publish at the end of this batch.

        That version covers the request's offset; a restart before it sees it again.
        """
        from consumers.erasure import decode_request, erase_in_worker

        self._after_learning()  # the events before the request reach the windows first
        user = decode_request(record.value)
        if user is None:
            self.dead_letters.put(record, "erasure: not an erasure request")
            return
        uid = user if self.pseudonymizer is None else self.pseudonymizer(user)
        removed = erase_in_worker(self.learner, self.quality, uid)
        self.stats.erasures += 1
        if removed or self.publish_unheld_erasures:  # publish now
            self._since_publish = max(self._since_publish, self.publish_every_events)
        log.info("erased a user on request (%d entries removed)", removed)
