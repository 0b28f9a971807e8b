"""A run drawn for people: an HTML page with PNG plots, opened from disk (no server).

:class:`RunData` holds what a run showed over time (x: events or seconds), whatever the
source (a ``report.json`` of ``lifelong evaluate``, Prometheus' range API, see
:mod:`monitoring.report_sources`). :func:`render` draws each part that has data into its
own PNG with matplotlib (no pyplot: no global state, no display) and writes ``index.html``
next to them, referring to each by a relative path.

>>> import tempfile
>>> from pathlib import Path
>>> run = RunData("doc", x_label="events")
>>> run.quality["rolling RMSE"] = ([0, 1000, 2000], [1.1, 0.9, 1.4])
>>> run.drift_marks.append((1500, "error"))
>>> with tempfile.TemporaryDirectory() as tmp:
...     page = render([run], Path(tmp))
...     sorted(p.name for p in Path(tmp).iterdir())
['index.html', 'run0-quality.png']
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

__all__ = ["Curve", "RunData", "render"]

log = logging.getLogger(__name__)

Curve = tuple[list[float], list[float]]  # x, y


@dataclass
class RunData:
    """What one run showed over time; every part is optional (empty parts are not drawn)."""

    title: str
    x_label: str = "events"
    quality: dict[str, Curve] = field(default_factory=dict)
    drift_marks: list[tuple[float, str]] = field(default_factory=list)  # (x, what)
    version_marks: list[tuple[float, str]] = field(default_factory=list)
    forgetting: list[list[float | None]] | None = None  # [round][slice] error
    throughput: dict[str, Curve] = field(default_factory=dict)
    lag: dict[str, Curve] = field(default_factory=dict)
    freshness: dict[str, Curve] = field(default_factory=dict)
    ranking: dict[str, Curve] = field(default_factory=dict)
    drift_psi: dict[str, Curve] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def _figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=(9, 3.6), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _lines(ax: Any, curves: dict[str, Curve]) -> None:
    for name, (x, y) in curves.items():
        ax.plot(x, [math.nan if v is None else v for v in y], label=name, linewidth=1.4)
    if curves:
        ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)


def _marks(ax: Any, run: RunData) -> None:
    """Versions as thin green lines; drift alarms as dashed lines named at the top."""
    for i, (x, _what) in enumerate(run.version_marks):
        ax.axvline(x, color="tab:green", alpha=0.35, linewidth=0.8,
                   label="version published" if i == 0 else None)
    at: dict[float, list[str]] = {}
    for x, what in run.drift_marks:
        at.setdefault(x, []).append(what)
    labelled: set[str] = set()
    for x, whats in sorted(at.items()):
        kind = "error" if whats == ["error"] else "input"
        ax.axvline(x, color="tab:red" if kind == "error" else "tab:orange", linestyle="--",
                   linewidth=1.2, label=None if kind in labelled else f"drift alarm ({kind})")
        labelled.add(kind)
        ax.annotate(", ".join(sorted(set(whats))), (x, 1.0), xycoords=("data", "axes fraction"),
                    rotation=90, fontsize=7, va="top", ha="right", color="0.3")
    if run.version_marks or at:
        ax.legend(loc="best", fontsize="small")


def _plot(run: RunData, name: str, title: str, y_label: str, curves: dict[str, Curve], *,
          marks: bool = False, log_y: bool = False) -> Figure | None:
    if not curves:
        return None
    fig, ax = _figure()
    _lines(ax, curves)
    if marks:
        _marks(ax, run)
    if log_y:
        ax.set_yscale("symlog", linthresh=1.0)
    ax.set_title(title)
    ax.set_xlabel(run.x_label)
    ax.set_ylabel(y_label)
    return fig


def _forgetting(run: RunData) -> Figure | None:
    matrix = run.forgetting
    if not matrix or len(matrix) < 2:
        return None
    fig, ax = _figure()
    rounds = list(range(1, len(matrix) + 1))
    for j in range(max(len(row) for row in matrix)):
        y = [row[j] if j < len(row) and row[j] is not None else math.nan for row in matrix]
        ax.plot(rounds, y, marker="o", linewidth=1.2, label=f"slice {j + 1}")
    ax.set_title("Forgetting: error on each held-back slice after each round")
    ax.set_xlabel("fine-tune round")
    ax.set_ylabel("RMSE")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small", ncol=2)
    return fig


def _parts(run: RunData) -> list[tuple[str, str, Figure | None]]:
    return [
        ("quality", "Quality over time (drift alarms and versions marked)",
         _plot(run, "quality", "Prequential error", "error", run.quality, marks=True)),
        ("drift", "Input drift: PSI by signal",
         _plot(run, "drift", "PSI of each signal against the previous window", "PSI",
               run.drift_psi, marks=True)),
        ("forgetting", "Forgetting", _forgetting(run)),
        ("throughput", "Throughput",
         _plot(run, "throughput", "Throughput", "events / s", run.throughput)),
        ("lag", "Consumer lag", _plot(run, "lag", "Consumer lag", "records", run.lag)),
        ("freshness", "Freshness",
         _plot(run, "freshness", "Freshness (median of each step)", "seconds", run.freshness,
               log_y=True)),
        ("ranking", "Ranking metrics",
         _plot(run, "ranking", "Ranking quality", "score", run.ranking, marks=True)),
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple) and len(value) > 8:
        return html.escape(f"{list(value[:8])} ... ({len(value)} in all)")
    return html.escape(str(value))


_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}"
          "table{border-collapse:collapse;margin:1em 0}td{padding:2px 12px;"
          "border-bottom:1px solid #ddd}img{max-width:100%;border:1px solid #eee}"
          "h2{margin-top:2em}")


def render(runs: Sequence[RunData], output: Path, *, title: str = "lifelong run") -> Path:
    """Draw ``runs`` into ``output`` (created); return the path of ``index.html``."""
    output.mkdir(parents=True, exist_ok=True)
    body = [f"<h1>{html.escape(title)}</h1>"]
    for i, run in enumerate(runs):
        body.append(f"<h2>{html.escape(run.title)}</h2>")
        if run.summary:
            rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{_cell(v)}</td></tr>"
                           for k, v in run.summary.items())
            body.append(f"<table>{rows}</table>")
        drawn = 0
        for name, heading, fig in _parts(run):
            if fig is None:
                continue
            png = f"run{i}-{name}.png"
            fig.savefig(output / png)
            drawn += 1
            body.append(f"<h3>{html.escape(heading)}</h3>"
                        f'<img src="{png}" alt="{html.escape(heading)}">')
        if not drawn:
            body.append("<p>No time series in this run.</p>")
        log.info("report: %s drew %d plots", run.title, drawn)
    page = output / "index.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'>"
                    f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
                    f"<body>{''.join(body)}</body></html>\n")
    return page
