"""Publish the online learner to the model store as a new version: a base or a delta."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from consumers.base_writer import ForkedWriter, fork_available
from consumers.checkpoint import Checkpoint
from consumers.worker import Learner
from learning.deltas import delta_capable
from learning.ranking_metrics import RankingScore
from model_store.codec import DELTA_FORMAT
from model_store.delta import DeltaBlob, dedup_tail, publish_delta, quality_diff, take_delta
from model_store.delta import encode as encode_delta
from monitoring.freshness import version_metadata

__all__ = ["RegistryPublisher", "refusal_alarm", "score_figures"]

log = logging.getLogger(__name__)


class _Registry(Protocol):
    def publish_object(self, model: str, obj: Any, *, metadata: Any = None,
                       parent: int | None = None, number: int | None = None) -> Any: ...
    def get(self, model: str, version: Any) -> Any: ...
    @property
    def backend(self) -> Any: ...
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
                 compact_floor_bytes: int = 0, base_writer: str = "inline",
                 writer: Any = None, retry_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        if compact_after < 0 or compact_share <= 0 or compact_floor_bytes < 0:
            raise ValueError("compact_after and compact_floor_bytes must be >= 0 and "
                             "compact_share positive")
        if base_writer not in ("inline", "fork"):
            raise ValueError(f'base_writer must be "inline" or "fork", got {base_writer!r}')
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
        # the gate users touched since ``_quality`` (QualityGates.take_touched); None: unknown
        self._touched: dict[str, list[Any]] | None = None
        self.bases = 0
        self.deltas = 0
        # bases written by a forked child (consumers.base_writer, docs/publishing.md)
        if writer is None and base_writer == "fork":
            if fork_available(registry):
                writer = ForkedWriter()
            else:
                log.info("model %s: bases are written in line (the store is not shared "
                         "across processes, or no fork here)", model)
        self._writer = writer
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._retry_at = -float("inf")
        self._fork: _Fork | None = None  # the base a child is writing, or has written
        self.forked_bases = 0
        self.forked_failures = 0
        # seconds spent in each step of publishing, summed over the run (bench.freshness):
        # rows taken, the worker state diffed, encoded, stored (delta or in-line base), forked
        self.timings = dict.fromkeys(("delta", "diff", "encode", "store", "base", "fork"), 0.0)

    def publish(self, learner: Learner, positions: dict[tuple[str, int], int]) -> int:
        """Store ``learner`` as the next version (a base or a delta); return its number."""
        score = learner.score()
        inner: Any = learner.learner if isinstance(learner, Checkpoint) else learner
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
        if isinstance(learner, Checkpoint):
            self._touched = _merge_touched(self._touched, learner.quality_touched)
        self._poll_fork()
        if self._fork is not None and getattr(inner, "_needs_base", False):
            self._drop_fork("an erasure: the next version is a base without the user")
        version, compact = self._publish_delta(learner, inner, metadata)
        if version is None:
            self._drop_fork(None)  # an in-line base supersedes a base being written
            digest = getattr(learner, "dedup_sha256", None)
            if digest is not None:  # a Checkpoint: the dedup window travels in the blob
                metadata["dedup_sha256"] = digest
            if self.compact_after and delta_capable(inner):
                metadata["chain"] = 0  # a base deltas will follow: subscribers keep a standby
            at = time.perf_counter()
            version = self.registry.publish_object(self.model, learner, metadata=metadata,
                                                   parent=self._last)
            self.timings["base"] += time.perf_counter() - at
            self._base, self._chain, self._chain_bytes = version, 0, 0
            self.bases += 1
        else:
            self._chain += 1
            self._chain_bytes = int(version.extra.get("chain_bytes", 0))
            self.deltas += 1
        if self._fork is not None and self._fork.number is None:  # a child writes: remember
            users, items = inner.dirty_rows()  # the rows deltas over its base will need
            self._fork.users |= users
            self._fork.items |= items
            self._fork.touched = _merge_touched(self._fork.touched, self._touched)
        if isinstance(learner, Checkpoint):
            self._dedup, self._quality, self._touched = learner.dedup, learner.quality, {}
        clear = getattr(inner, "clear_dirty", None)
        if callable(clear):
            clear()  # the version holds every row touched so far
        self._previous = version
        self._last = version.number
        if compact:  # a consistent point: the learner is exactly ``version``
            at = time.perf_counter()
            self._start_fork(learner, version, metadata)
            self.timings["fork"] += time.perf_counter() - at
        return int(version.number)

    def continue_from(self, version: Any, checkpoint: Any = None) -> None:
        """Continue ``version``'s chain: the learner was just loaded from it (a resume).

        The next version is then a delta over ``version`` (a base only when due), instead
        of a whole base at every restart (13-16 s in line at 1M users). ``checkpoint``: the
        worker's state right after its restore (what ``version`` holds: the dedup window and
        gate windows the next delta is diffed against); None for a bare learner.

        >>> from model_store import Registry
        >>> from model_store.signing import Signer
        >>> from learning.online import OnlineLearner
        >>> from stream.schema import Event
        >>> reg = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-doc-key"))
        >>> learner = OnlineLearner()
        >>> _ = learner.learn_one(Event("e0", "u0", "i", "rating", 4.0, 0.0))
        >>> first = RegistryPublisher(reg, "reco").publish(learner, {})
        >>> version, resumed = reg.load_object("reco", "latest")
        >>> pub = RegistryPublisher(reg, "reco", parent=version.number, compact_share=100.0)
        >>> pub.continue_from(version)
        >>> _ = resumed.learn_one(Event("e1", "u1", "i", "rating", 3.0, 1.0))
        >>> reg.get("reco", pub.publish(resumed, {})).format
        'river-delta'
        """
        base = version
        if version.format == DELTA_FORMAT:
            base = self.registry.get(self.model, int(version.extra["base"]))
            self._chain = int(version.extra.get("chain", 0))
            self._chain_bytes = int(version.extra.get("chain_bytes", 0))
        self._previous, self._base, self._last = version, base, version.number
        if checkpoint is not None:
            self._dedup, self._quality = checkpoint.dedup, checkpoint.quality

    def close(self, wait_seconds: float = 0.0) -> None:
        """Wait up to ``wait_seconds`` for a base being written by a child, then stop it."""
        if self._writer is not None and self._fork is not None:
            self._writer.close(wait_seconds)
            self._fork = None

    # bases from a forked child --------------------------------------------------------
    def _start_fork(self, learner: Any, version: Any, metadata: dict[str, Any]) -> None:
        """Fork a child that writes the learner (== ``version``) as a base; learning goes on."""
        if (self._writer is None or self._fork is not None
                or self._clock() < self._retry_at):
            return
        number = self.registry.backend.reserve(self.model)  # below every later version
        meta = {**metadata, "chain": 0, "rebase_of": version.number,
                "rebase_sha256": version.sha256}
        digest = getattr(learner, "dedup_sha256", None)
        if digest is not None:
            meta["dedup_sha256"] = digest
        registry, model = self.registry, self.model

        def write() -> int:
            return int(registry.publish_object(model, learner, metadata=meta,
                                               parent=version.number, number=number).number)

        fork = _Fork(number=None, reserved=number, rebase_of=version, dedup=self._dedup,
                     quality=self._quality)
        try:
            started = self._writer.start(write)
        except OSError as exc:  # no memory for a fork, too many processes ...
            started = False
            log.warning("model %s: could not fork a base writer (%s); retry in %.0f s",
                        self.model, exc, self.retry_seconds)
        if started:
            self._fork = fork
            log.info("model %s: a child writes base %d (== version %d)", self.model, number,
                     version.number)
        else:
            self._retry_at = self._clock() + self.retry_seconds

    def _poll_fork(self) -> None:
        if self._writer is None or self._fork is None or self._fork.number is not None:
            return
        done = self._writer.poll()
        if done is None:
            return
        outcome, detail = done
        if outcome == "ok":
            try:
                self._fork.base = self.registry.get(self.model, detail)
            except Exception as exc:  # e.g. retention or a purge removed it already
                outcome, detail = "failed", f"base {detail} not readable: {exc}"
        if outcome == "ok":
            self._fork.number = int(detail)
            self.forked_bases += 1
            log.info("model %s: base %d written by the child; the next delta continues it",
                     self.model, detail)
            return
        self.forked_failures += 1
        log.error("model %s: the child writing base %d failed (%s); the chain goes on, "
                  "retry in %.0f s", self.model, self._fork.reserved, detail,
                  self.retry_seconds)
        self._fork = None
        self._retry_at = self._clock() + self.retry_seconds

    def _drop_fork(self, why: str | None) -> None:
        if self._fork is None:
            return
        if why is not None:
            log.info("model %s: dropping base %d (%s)", self.model, self._fork.reserved, why)
        if self._fork.number is None and self._writer is not None:
            self._writer.cancel()
        self._fork = None

    def _publish_delta(self, learner: Any, inner: Any, metadata: dict[str, Any]
                       ) -> tuple[Any, bool]:
        """Publish a delta, or return ``(None, False)`` if a base is due in line.

        The flag says a base is due and a child is to write it after this delta.
        """
        if (self._previous is None or self.compact_after == 0 or not delta_capable(inner)
                or inner._needs_base
                or isinstance(learner, Checkpoint) != (self._dedup is not None)
                or getattr(learner, "impressions", None) is not None):  # no join state in deltas
            return None, False
        timings, at = self.timings, time.perf_counter()
        fork = self._fork if self._fork is not None and self._fork.number is not None else None
        if fork is not None:  # the first delta over the child's base: every row since it
            users, items = inner.dirty_rows()
            parent, base, chain, chain_bytes = fork.base, fork.base, 0, 0
            before_dedup, before_quality = fork.dedup, fork.quality
            touched = _merge_touched(fork.touched, self._touched)
            delta = take_delta(inner, (fork.users | users, fork.items | items))
        else:
            parent, base, chain, chain_bytes = (self._previous, self._base, self._chain,
                                                self._chain_bytes)
            before_dedup, before_quality, touched = self._dedup, self._quality, self._touched
            delta = take_delta(inner)
        at = _took(timings, "delta", at)
        blob = DeltaBlob(parent_sha256=parent.sha256, base=base.number, learner=delta)
        if isinstance(learner, Checkpoint) and before_dedup is not None:
            blob.dedup_tail = dedup_tail(before_dedup, learner.dedup)
            blob.dedup_len = len(learner.dedup) // 8
            blob.quality_set, blob.quality_drop = quality_diff(before_quality, learner.quality,
                                                               touched)
        at = _took(timings, "diff", at)
        data = encode_delta(blob)
        at = _took(timings, "encode", at)
        limit = self.compact_share * max(base.size, self.compact_floor_bytes)
        size = chain_bytes + len(data)
        due = chain >= self.compact_after or size > limit
        if due and (self._writer is None  # a base in line, as without a writer; or when
                    or (self._fork is None  # no child at work (they failed: a retry waits)
                        and (chain >= 2 * self.compact_after or size > 2 * limit))):
            return None, False
        version = publish_delta(self.registry, self.model, blob, parent=parent,
                                metadata=metadata, chain=chain + 1, chain_bytes=chain_bytes,
                                data=data)
        _took(timings, "store", at)
        if fork is not None:
            self._base, self._chain, self._chain_bytes = fork.base, 0, 0
            self._fork = None
        return version, due and self._fork is None


def _merge_touched(a: dict[str, list[Any]] | None, b: dict[str, list[Any]] | None
                   ) -> dict[str, list[Any]] | None:
    """The gate users touched in either span (per type and rule); None where either is unknown.

    >>> _merge_touched({"*": [{"a": None}]}, {"*": [{"b": None}], "click": [None]})
    {'*': [{'a': None, 'b': None}], 'click': [None]}
    >>> _merge_touched(None, {"*": [{}]}) is None
    True
    """
    if a is None or b is None:
        return None
    out = dict(a)
    for kind, rules in b.items():
        mine = out.get(kind)
        if mine is None:
            out[kind] = list(rules)
            continue
        if len(mine) != len(rules):
            return None
        out[kind] = [None if x is None or y is None else {**x, **y}
                     for x, y in zip(mine, rules, strict=True)]
    return out


def _took(timings: dict[str, float], step: str, since: float) -> float:
    now = time.perf_counter()
    timings[step] += now - since
    return now


class _Fork:
    """A base a child is writing (``number`` None) or has written, equal to ``rebase_of``."""

    def __init__(self, *, number: int | None, reserved: int, rebase_of: Any,
                 dedup: bytes | None, quality: dict[str, Any]):
        self.number = number
        self.reserved = reserved
        self.rebase_of = rebase_of
        self.base: Any = None
        self.dedup = dedup  # the worker state the base holds (deltas over it diff against it)
        self.quality = quality
        self.users: set[str] = set()  # rows touched since the base's state
        self.items: set[str] = set()
        self.touched: dict[str, list[Any]] | None = {}  # ... and gate users (None: unknown)
