"""Where a run report's data comes from: ``report.json`` files, or Prometheus' range API.

:class:`SeriesRecorder` is the one home of the per-window ``series`` a ``report.json``
carries (``lifelong evaluate --report``): every ``every`` learned events, one row of the
learner's figures (``events``, ``seconds``, each number of its score: ``rmse``,
``rolling_rmse``, ..., ranking figures for a ranking learner) and the PSI per signal
(``psi_<signal>``). :func:`from_report` reads such a report; :func:`from_prometheus` asks
Prometheus for the same pictures of a live run between two times.

>>> rec = SeriesRecorder(every=2)
>>> score = {"rmse": 1.0, "rolling_rmse": 0.9}
>>> for n in range(1, 6):
...     rec.record(n, score, seconds=n / 10)
>>> [int(row["events"]) for row in rec.rows]
[2, 4]
>>> run = from_report({"model": "m", "series": rec.rows, "drift_alarms": [3]})
>>> sorted(run.quality), run.drift_marks
(['RMSE', 'rolling RMSE'], [(3.0, 'error')])
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from monitoring.promql import PromQLError, query_range
from monitoring.report import Curve, RunData

__all__ = ["EvaluationSeries", "SeriesRecorder", "from_prometheus", "from_report", "load_run",
           "numbers"]

log = logging.getLogger(__name__)

_QUALITY = {"rmse": "RMSE", "mae": "MAE", "rolling_rmse": "rolling RMSE",
            "rolling_mae": "rolling MAE"}
_RANKING_HINTS = ("ndcg", "recall", "precision", "hit", "mrr", "map", "auc", "coverage")
_NOT_PLOTTED = {"events", "seconds", "n", "events_per_second", "version"}


def numbers(score: Any) -> dict[str, float]:
    """The finite numbers of a score object (a msgspec struct, dataclass or mapping)."""
    items: Iterable[tuple[str, Any]]
    if isinstance(score, Mapping):
        items = score.items()
    elif hasattr(score, "__struct_fields__"):
        items = ((f, getattr(score, f)) for f in score.__struct_fields__)
    else:
        items = vars(score).items()
    return {k: float(v) for k, v in items
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


class SeriesRecorder:
    """Collect one row every ``every`` learned events (see the module docstring).

    Rows are taken between batches: at the first batch end at or past each multiple of
    ``every`` (a file source reads 1000 records a batch).
    """

    def __init__(self, every: int = 1000):
        if every < 1:
            raise ValueError(f"series every {every} events: expected a positive count")
        self.every = every
        self.rows: list[dict[str, float]] = []
        self._next = every

    def record(self, events: int, score: Any, *, seconds: float,
               psi: Mapping[str, float] | None = None, final: bool = False,
               version: int | None = None) -> None:
        """Add a row if ``events`` reached the next multiple of ``every`` (or ``final``)."""
        last = self.rows[-1]["events"] if self.rows else 0
        if events < self._next and not (final and events > last):
            return
        self._next = (events // self.every + 1) * self.every
        row = {"events": float(events), "seconds": seconds, **numbers(score)}
        row.update({f"psi_{k}": v for k, v in (psi or {}).items()})
        if version is not None:  # the latest published version: its changes are marked
            row["version"] = float(version)
        self.rows.append(row)


class EvaluationSeries:
    """``evaluate --report``: the worker hooks and the report fields for a series.

    The error detector (ADWIN) and the input drift watch run on the replay, so the plots
    can mark their alarms; ``record`` is called after each batch.
    """

    def __init__(self, learner: Any, every: int = 1000):
        from monitoring.drift import ErrorDrift
        from monitoring.input_drift import InputDriftWatch

        self.learner = learner
        self.recorder = SeriesRecorder(every)
        self.alarms: list[dict[str, Any]] = []
        self.watch = InputDriftWatch.for_learner(
            learner, "evaluate", on_alarm=lambda at, **d: self.alarms.append({"at": at, **d}))
        self.hooks: dict[str, Any] = {"drift": ErrorDrift(), "input_drift": self.watch}

    def record(self, stats: Any, seconds: float, *, final: bool = False) -> None:
        """Add a row for the worker's ``stats`` if one is due."""
        self.recorder.record(stats.learned, self.learner.score(), seconds=seconds,
                             psi=self.watch.drift.psi(), final=final)

    def report(self, stats: Any, seconds: float) -> dict[str, Any]:
        """The fields to add to the report (the last, partial window included)."""
        self.record(stats, seconds, final=True)
        return {"series": self.recorder.rows, "drift_alarms": stats.drift_alarms,
                "input_drift_alarms": self.alarms}


def _curve(rows: list[dict[str, float]], key: str) -> Curve:
    pairs = [(r["events"], r[key]) for r in rows if key in r]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def from_report(report: Mapping[str, Any], title: str | None = None) -> RunData:
    """A :class:`RunData` from one ``report.json`` (``evaluate``, ``demo``)."""
    run = RunData(title or f"{report.get('model', 'run')} on {report.get('data', '?')}",
                  x_label="events learned")
    rows = list(report.get("series") or [])
    keys = sorted({k for row in rows for k in row} - _NOT_PLOTTED)
    for key in keys:
        if key in _QUALITY:
            run.quality[_QUALITY[key]] = _curve(rows, key)
        elif key.startswith("psi_"):
            run.drift_psi[key.removeprefix("psi_")] = _curve(rows, key)
        elif report.get("task") == "ranking" or any(h in key for h in _RANKING_HINTS):
            run.ranking[key] = _curve(rows, key)
    if len(rows) >= 2:
        x = [r["events"] for r in rows[1:]]
        rate = [(b["events"] - a["events"]) / max(1e-9, b["seconds"] - a["seconds"])
                for a, b in itertools.pairwise(rows)]
        run.throughput["events learned / s"] = (x, rate)
    run.drift_marks += [(float(at), "error") for at in report.get("drift_alarms") or []]
    run.drift_marks += [(float(a["at"]), f"{a['signal']} ({a['detector']})")
                        for a in report.get("input_drift_alarms") or []]
    run.version_marks += [(float(v["at"]), f"v{v['version']}")
                          for v in report.get("version_marks") or []]
    versions = [(r["events"], r["version"]) for r in rows if "version" in r]
    run.version_marks += [(x, f"v{int(v)}") for (_, u), (x, v) in itertools.pairwise(versions)
                          if v != u]
    if report.get("forgetting_matrix"):
        run.forgetting = report["forgetting_matrix"]
    run.summary = {k: v for k, v in report.items()
                   if k not in {"series", "forgetting_matrix", "invalid_examples",
                                "input_drift_alarms", "version_marks"}}
    return run


def _changes(curve: Curve) -> list[float]:
    x, y = curve
    return [x[i] for i in range(1, len(y)) if y[i] > y[i - 1]]


def from_prometheus(url: str, model: str, start: float, end: float, *,
                    step: float | None = None, title: str | None = None) -> RunData:
    """A :class:`RunData` of ``model`` between ``start`` and ``end`` (Unix seconds).

    x is seconds since ``start``; rates use a window of four steps, at least 30 s (a short
    run is scraped only a few times).
    Queries that fail or return nothing leave their part empty (logged, not raised).
    """
    step = step or max(1.0, (end - start) / 300)
    w = f"{max(30, int(4 * step))}s"
    m = f'model="{model}"'
    run = RunData(title or f"{model} (Prometheus {url})", x_label="seconds since start")

    def series(expr: str, legend: str = "") -> dict[str, Curve]:
        try:
            result = query_range(url, expr, start, end, step)
        except PromQLError as exc:
            log.warning("report: %s", exc)
            return {}
        out = {}
        for labels, points in result:
            name = legend.format(**labels) if legend else expr
            out[name] = ([t - start for t, _ in points], [v for _, v in points])
        return out

    run.quality.update(series(f"max(lifelong_learner_prequential_rolling_rmse{{{m}}})",
                              "rolling RMSE"))
    run.quality.update(series(f"max(lifelong_learner_prequential_rmse{{{m}}})", "RMSE"))
    for curve in series(f"sum(lifelong_learner_drift_alarms_total{{{m}}})").values():
        run.drift_marks += [(x, "error") for x in _changes(curve)]
    for name, curve in series(f"sum by (signal, detector) (lifelong_drift_alarms_total{{{m}}})",
                              "{signal} ({detector})").items():
        run.drift_marks += [(x, name) for x in _changes(curve)]
    for curve in series(f"max(lifelong_model_version{{{m}}})").values():
        run.version_marks += [(x, "version") for x in _changes(curve)]
    run.drift_psi.update(series(f"max by (signal) (lifelong_drift_psi{{{m}}})", "{signal}"))
    run.throughput.update(series(
        f"sum(rate(lifelong_learner_events_consumed_total{{{m}}}[{w}]))", "consumed / s"))
    run.throughput.update(series(
        f"sum(rate(lifelong_learner_events_learned_total{{{m}}}[{w}]))", "learned / s"))
    run.lag.update(series(f"sum by (topic) (lifelong_learner_consumer_lag{{{m}}})",
                          "online learner {topic}"))
    for step_name in ("event_to_learned", "learned_to_published", "published_to_loaded",
                      "event_to_served"):
        run.freshness.update(series(
            f"histogram_quantile(0.5, sum by (le) (rate("
            f"lifelong_freshness_{step_name}_seconds_bucket{{{m}}}[{w}])))",
            step_name.replace("_to_", " -> ").replace("_", " ")))
    return run


def load_run(path: Path) -> list[RunData]:
    """Every report under ``path`` (a ``report.json`` or a folder of them), oldest name first.

    A report with a ``prometheus`` block (``url``, ``model``, ``start``, ``end``: what
    ``demo --report`` writes) adds the live run's pictures from Prometheus.
    """
    files = [path] if path.is_file() else sorted(path.rglob("*.json"))
    runs = []
    for file in files:
        try:
            report = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            log.warning("report: skipping %s (%s)", file, exc)
            continue
        if not isinstance(report, dict):
            continue
        own = bool(report.get("series") or report.get("forgetting_matrix")
                   or "events" in report)
        if own:
            runs.append(from_report(report, title=f"{file.name}: {report.get('model', '')}"))
        prom = report.get("prometheus")
        if isinstance(prom, dict) and {"url", "model", "start", "end"} <= set(prom):
            live = from_prometheus(prom["url"], prom["model"], float(prom["start"]),
                                   float(prom["end"]))
            if not own:
                live.summary = {k: v for k, v in report.items() if k != "prometheus"}
            runs.append(live)
    return runs
