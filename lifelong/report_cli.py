"""``lifelong report RUN --output DIR``: draw a run as an HTML page with PNG plots."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from lifelong.config import ConfigError
from lifelong.errors import cli_errors

__all__ = ["report", "write_report"]


def write_report(run: Path | None, output: Path, *, prometheus: str | None = None,
                 model: str | None = None, since: float = 3600.0,
                 title: str | None = None) -> Path:
    """Render the reports under ``run`` (and/or ``model`` from ``prometheus``) into ``output``.

    Returns the path of ``index.html``; raises :class:`ConfigError` when there is nothing
    to draw.
    """
    from monitoring.report import render
    from monitoring.report_sources import from_prometheus, load_run

    runs = load_run(run) if run is not None else []
    if prometheus and model:
        end = time.time()
        runs.append(from_prometheus(prometheus, model, end - since, end))
    elif prometheus or model:
        raise ConfigError("--prometheus and --model go together")
    if not runs:
        raise ConfigError(f"{run}: no report.json with a run in it (and no --prometheus)")
    return render(runs, output, title=title or f"lifelong run {run.name if run else model}")


def report(
    run: Annotated[Path | None, typer.Argument(
        help="a report.json (evaluate --output, demo --report) or a folder of them",
        exists=True)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for index.html and "
                                         "the PNGs")] = Path("report"),
    prometheus: Annotated[str | None, typer.Option(
        help="also draw MODEL from this Prometheus (range API), e.g. http://127.0.0.1:9090")]
    = None,
    model: Annotated[str | None, typer.Option(help="model name for --prometheus")] = None,
    since: Annotated[float, typer.Option(help="--prometheus: seconds back from now")] = 3600.0,
) -> None:
    """Draw a run as an HTML page with PNG plots, to open from disk (no server).

    Quality over time with drift alarms and versions, forgetting, throughput, lag,
    freshness and ranking figures, for whatever the run recorded.
    """
    with cli_errors():
        page = write_report(run, output, prometheus=prometheus, model=model, since=since)
    typer.echo(f"report: {page}")
