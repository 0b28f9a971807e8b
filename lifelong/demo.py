"""``lifelong demo``: the whole walking skeleton once, as a user would run it."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from lifelong.config import Settings

__all__ = ["DemoError", "run_demo"]


class DemoError(RuntimeError):
    """The demo could not finish; the message says which step failed."""


def run_demo(console: Console, out: Console, *, events: int, drift_at: int | None,
             invalid_rate: float, seed: int, progress: Callable[[], Progress],
             drain_timeout: float = 300.0, report_dir: Path | None = None) -> dict[str, Any]:
    """Start services, stream a drifting synthetic workload through the learner, summarise.

    With ``report_dir``, also write ``report.json`` (the summary and where Prometheus has
    the run) and draw it there (``index.html``, see ``lifelong report``).
    """
    from deploy.base import redact
    from deploy.services import up
    from lifelong.commands import synthetic_stream
    from lifelong.wiring import build_online_run
    from monitoring.promql import wait_for_value
    from stream.producer import EventProducer

    stream = synthetic_stream(events, [drift_at] if drift_at else None, invalid_rate, seed)
    _ensure_signing_key(console)
    _ensure_pseudonym_key(console)
    console.print("[bold]1/4[/] services (the first run fetches Kafka from Maven Central)")
    endpoints = {ep.name: ep for ep in up()}
    for ep in endpoints.values():
        console.print(f"      {ep.name:<10} {redact(ep.address)}  ({ep.origin})")
    run_id = time.strftime("%Y%m%d-%H%M%S")
    settings = Settings.from_env(
        kafka_bootstrap=endpoints["kafka"].address, redis_url=endpoints["redis"].address,
        topic=f"demo-{run_id}", dlq_topic=f"demo-{run_id}.dlq", group_id=f"demo-{run_id}",
        model="demo", publish_every_events=max(500, events // 10),
        erasure_topic=f"demo-{run_id}.erasures")  # docs/privacy.md
    console.print(f"[bold]2/4[/] topics {settings.topic!r} + {settings.dlq_topic!r}; learner "
                  f"{settings.model_kind} publishing model {settings.model!r}")
    run = build_online_run(settings, clip=(1.0, 5.0), resume=False)
    stop = threading.Event()
    result: dict[str, Any] = {}
    rows: list[dict[str, float]] = []
    on_batch = _series(run, max(100, events // 50), rows) if report_dir is not None else None
    learner = threading.Thread(
        target=lambda: result.update(stats=run.worker.run(stop=stop, on_batch=on_batch)),
        name="learner", daemon=True)
    console.print(f"[bold]3/4[/] streaming {events} events (drift at "
                  f"{', '.join(map(str, stream.drift_points))}, {invalid_rate:.1%} broken)")
    learner.start()
    started = time.time()
    try:
        with progress() as bar, EventProducer(endpoints["kafka"].address,
                                              settings.topic) as producer:
            sent_task = bar.add_task("produced", total=events, info="")
            learn_task = bar.add_task("learned ", total=events, info="")
            sent = producer.send_all(stream.raw(),
                                     on_progress=lambda n: bar.update(sent_task, completed=n))
            deadline = time.monotonic() + drain_timeout
            while run.worker.stats.consumed < sent and time.monotonic() < deadline:
                if not learner.is_alive():
                    break
                stats = run.worker.stats
                bar.update(learn_task, completed=stats.consumed,
                           info=f"invalid {stats.invalid}  rmse "
                                f"{run.worker.learner.score().rmse:.3f}")
                time.sleep(0.2)
            bar.update(learn_task, completed=run.worker.stats.consumed)
        stop.set()
        learner.join(timeout=60)
        stats = result.get("stats") or run.worker.stats
        if stats.consumed < sent:
            raise DemoError(f"the learner consumed {stats.consumed} of {sent} records in "
                            f"{drain_timeout:.0f} s; see the logs above")
        console.print("[bold]4/4[/] waiting for Prometheus to scrape the final figures")
        prom = endpoints["prometheus"].address
        expr = (f'sum(lifelong_learner_events_consumed_total{{model="demo",'
                f'topic="{settings.topic}"}})')
        scraped = wait_for_value(prom, expr, lambda v: v >= stats.consumed, timeout=30)
    finally:
        stop.set()
        learner.join(timeout=60)
        run.close()
    score = run.worker.learner.score()
    summary = {
        "events_sent": sent, "events_consumed": stats.consumed, "events_learned": stats.learned,
        "events_invalid": stats.invalid, "invalid_by_kind": stats.invalid_by_kind,
        "rmse": score.rmse, "mae": score.mae, "rolling_rmse": score.rolling_rmse,
        "versions": stats.versions, "prometheus_events_consumed": scraped,
    }
    table = Table(title="lifelong demo", show_header=False)
    table.add_row("events learned", str(stats.learned))
    table.add_row("invalid events (to DLQ)", f"{stats.invalid} -> topic {settings.dlq_topic}")
    table.add_row("  by reason", ", ".join(f"{k} {v}" for k, v in
                                         sorted(stats.invalid_by_kind.items())))
    table.add_row("prequential RMSE / MAE", f"{score.rmse:.4f} / {score.mae:.4f}")
    table.add_row("RMSE, last 1000 events", f"{score.rolling_rmse:.4f}")
    table.add_row("model versions published",
                  f"{len(stats.versions)} (model 'demo', latest v{stats.versions[-1]})"
                  if stats.versions else "0")
    table.add_row("Prometheus", f"{prom}  (events consumed, as scraped: "
                  f"{int(scraped) if scraped is not None else 'not yet'})")
    table.add_row("  try", "lifelong_learner_prequential_rolling_rmse")
    table.add_row("model store",
                  f"{redact(endpoints['redis'].address)}  (lifelong models list demo)")
    out.print(table)
    if report_dir is not None:
        _write_report(out, report_dir,
                      {**summary, "series": rows, "drift_alarms": stats.drift_alarms}, prom,
                      settings.model, started)
    return summary


def _series(run: Any, every: int, rows: list[dict[str, float]]) -> Callable[[Any], None]:
    """An ``on_batch`` that adds the learner's figures to ``rows`` every ``every`` events."""
    from monitoring.report_sources import SeriesRecorder

    recorder, started = SeriesRecorder(every), time.monotonic()
    recorder.rows = rows

    def record(stats: Any) -> None:
        watch = run.worker.input_drift
        recorder.record(stats.learned, run.worker.learner.score(),
                        seconds=time.monotonic() - started,
                        psi=watch.drift.psi() if watch is not None else None,
                        version=stats.versions[-1] if stats.versions else 0)

    return record


def _write_report(out: Console, report_dir: Path, summary: dict[str, Any], prom: str,
                  model: str, started: float) -> None:
    from lifelong.report_cli import write_report

    report_dir.mkdir(parents=True, exist_ok=True)
    live = {"url": prom, "model": model, "start": started - 5, "end": time.time() + 5}
    (report_dir / "report.json").write_text(json.dumps({**summary, "prometheus": live},
                                                       indent=2) + "\n")
    out.print(f"report: {write_report(report_dir, report_dir, title='lifelong demo')}")


def _ensure_key(console: Console, name: str, file: str, why: str) -> None:
    """A local secret in ``$LIFELONG_HOME/<file>`` unless ``LIFELONG_<NAME>_KEY[_FILE]`` is set."""
    variable = f"LIFELONG_{name}_KEY"
    if os.environ.get(variable) or os.environ.get(f"{variable}_FILE"):
        return
    from deploy.services import lifelong_home

    path = lifelong_home() / file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32) + "\n")
    os.environ[f"{variable}_FILE"] = str(path)
    console.print(f"      {why} with the local key {path}")


def _ensure_signing_key(console: Console) -> None:
    """Models are pickles and must be signed: make a local key if none is configured."""
    _ensure_key(console, "SIGNING", "signing.key",
                "signing models (set LIFELONG_SIGNING_KEY in production)")


def _ensure_pseudonym_key(console: Console) -> None:
    """The demo learns pseudonyms, not raw user ids (docs/privacy.md): make a local key."""
    _ensure_key(console, "PSEUDONYM", "pseudonym.key", "pseudonymising user ids")
