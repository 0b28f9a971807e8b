"""The ``lifelong`` command line: services, produce, learn, evaluate, models, demo."""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from deploy.cli import services_app
from lifelong.config import ConfigError, Settings
from lifelong.errors import cli_errors, fail
from lifelong.experiment_cli import experiment_app
from lifelong.models_cli import models_app
from lifelong.privacy_cli import forget
from lifelong.report_cli import report

__all__ = ["app", "main"]

console = Console(stderr=True)
out = Console(soft_wrap=True)
app = typer.Typer(
    # help texts are plain: "[default: X; env VAR]" would be taken for rich markup and vanish
    rich_markup_mode=None,
    help="Streaming lifelong learning: Kafka events -> River online models (+ PyTorch "
    "fine-tuning) -> versioned models in Redis, watched by Prometheus.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(services_app, name="services", help="Start, stop and check local Kafka, Redis "
              "and Prometheus (or use the ones named in the environment).")
app.add_typer(experiment_app, name="experiment", help="Experiments on synthetic streams "
              "with known drift (forgetting).")
app.command()(report)
app.command()(forget)
app.add_typer(models_app, name="models", help="Model versions in the Redis model store: "
              "list, show, promote, rollback, gc, watch.")

Fmt = Annotated[str, typer.Option("--format", "-f", help="movielens | csv | jsonl")]
Columns = Annotated[str | None, typer.Option(
    help="csv column names, e.g. user=uid,item=sku,value=stars,ts=time")]
Clip = Annotated[str | None, typer.Option(help="clip predictions to LOW,HIGH, e.g. 1,5")]
MaxBadRows = Annotated[int, typer.Option(
    help="stop (naming the line) after more than N rows that cannot be split into fields; "
         "-1: no limit")]


@app.callback()
def _main(ctx: typer.Context,
          verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logs")] = False,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="warnings only")] = False,
          ) -> None:
    # Long-running services (learn) log at INFO; one-shot commands keep the terminal for
    # their progress bars and summary and only log warnings, unless -v.
    one_shot = {"demo", "evaluate", "produce", "models", "experiment", "report"}
    quiet_by_default = ctx.invoked_subcommand in one_shot
    level = (logging.DEBUG if verbose else logging.WARNING if quiet or quiet_by_default
             else logging.INFO)
    logging.basicConfig(level=level, format="%(name)s: %(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=console, show_path=False)], force=True)
    for noisy in ("kafka", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)


def _clip(spec: str | None) -> tuple[float, float] | None:
    if spec is None:
        return None
    try:
        low, high = (float(x) for x in spec.split(","))
    except ValueError as exc:
        raise ConfigError(f"--clip={spec!r}: expected LOW,HIGH such as 1,5") from exc
    if not low < high:
        raise ConfigError(f"--clip={spec!r}: LOW must be below HIGH")
    return low, high


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)


@app.command()
def produce(
    file: Annotated[Path | None, typer.Argument(help="events file to replay")] = None,
    fmt: Fmt = "jsonl",
    columns: Columns = None,
    sort_by_time: Annotated[bool, typer.Option(help="send in time order")] = False,
    synthetic: Annotated[bool, typer.Option(help="send a synthetic drifting stream")] = False,
    implicit: Annotated[bool, typer.Option(help="synthetic: behaviour events (sessions, "
                                           "view/click/cart/purchase) instead of ratings")]
    = False,
    output: Annotated[Path | None, typer.Option(help="synthetic: write jsonl to this file "
                                                "instead of Kafka")] = None,
    events: Annotated[int, typer.Option(help="synthetic: number of events")] = 10_000,
    drift_at: Annotated[list[int] | None, typer.Option(help="synthetic: drift points")] = None,
    invalid_rate: Annotated[float, typer.Option(help="synthetic: share of broken records")] = 0.0,
    seed: Annotated[int, typer.Option(help="synthetic: random seed")] = 42,
    rate: Annotated[float | None, typer.Option(help="events per second (default: max)")] = None,
    topic: Annotated[str | None, typer.Option(help="topic (default: $LIFELONG_TOPIC or events)")]
    = None,
    max_bad_rows: MaxBadRows = 100,
) -> None:
    """Push events into Kafka from a file or a synthetic generator (or write it to a file)."""
    from lifelong.commands import produce_events

    with cli_errors():
        settings = Settings.from_env(topic=topic)
        if (file is None) == (not synthetic):
            raise ConfigError("give exactly one of FILE or --synthetic")
        if (implicit or output is not None) and not synthetic:
            raise ConfigError("--implicit and --output make a synthetic stream: add --synthetic")
        with _progress() as bar:
            from stream.files import count_rows

            total = events if synthetic else count_rows(file, fmt)  # type: ignore[arg-type]
            task = bar.add_task("producing", total=total, info="")
            sent = produce_events(settings, file=file, fmt=fmt, columns=columns,
                                  sort_by_time=sort_by_time, synthetic=synthetic, events=events,
                                  drift_at=drift_at, invalid_rate=invalid_rate, seed=seed,
                                  rate=rate, implicit=implicit, output=output,
                                  max_bad_rows=None if max_bad_rows < 0 else max_bad_rows,
                                  on_progress=lambda n: bar.update(task, completed=n))
        where = f"file {str(output)!r}" if output is not None else f"topic {settings.topic!r}"
        out.print(f"{'wrote' if output is not None else 'sent'} {sent} records to {where}")


@app.command()
def learn(
    model: Annotated[str | None, typer.Option(
        help="model name in the store " + Settings.describe("model"))] = None,
    kind: Annotated[str | None, typer.Option(
        help="rating: River model (BiasedMF, FunkMF, FMRegressor, Baseline); ranking: "
             "popularity, decayed-popularity, bpr, bpr-pop, co-occurrence, sequence, blend, "
             "rerank, rerank-knn, rerank-mlp, rerank-bpr (a third of rerank's speed), "
             "rerank-bpr2 (two BPR parts), rerank-bpr-uni (the best, x1.15 HR/NDCG@10 of "
             "decayed popularity, a fifth of rerank's speed); default rerank")] = None,
    task: Annotated[str | None, typer.Option(
        help="rating (regress the value) or ranking (implicit feedback, rolling HR/NDCG@10 "
             "on /metrics) " + Settings.describe("task"))] = None,
    group: Annotated[str | None, typer.Option(
        help="Kafka consumer group " + Settings.describe("group_id"))] = None,
    topic: Annotated[str | None, typer.Option(
        help="events topic " + Settings.describe("topic"))] = None,
    publish_every_events: Annotated[int | None, typer.Option(
        help="publish every N events " + Settings.describe("publish_every_events"))] = None,
    publish_every_seconds: Annotated[float | None, typer.Option(
        help="... or T seconds, whichever first " + Settings.describe("publish_every_seconds"))
    ] = None,
    keep_last: Annotated[int | None, typer.Option(
        help="keep the last N versions, pruning older ones after each publish (never one an "
             "alias points at) " + Settings.describe("keep_last"))] = None,
    publish_max_share: Annotated[float | None, typer.Option(
        help="the publish floor: publishing may use at most this share of the learner's time "
             "(a budget refilled at this share of elapsed time, 1 s burst) "
             + Settings.describe("publish_max_share"))] = None,
    compact_after: Annotated[int | None, typer.Option(
        help="BiasedMF/FunkMF publish row deltas; a whole version (base) after N deltas, 0: "
             "always whole " + Settings.describe("compact_after"))] = None,
    compact_share: Annotated[float | None, typer.Option(
        help="... or once the deltas since the base add up to this share of its size "
             + Settings.describe("compact_share"))] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="/metrics port (0: any) " + Settings.describe("metrics_port"))] = None,
    max_events: Annotated[int | None, typer.Option(help="stop after N records")] = None,
    idle_timeout: Annotated[float | None, typer.Option(help="stop after T idle seconds")]
    = None,
    clip: Clip = None,
    resume: Annotated[bool, typer.Option(help="warm-start from the latest version")] = True,
    blend_with: Annotated[str | None, typer.Option(
        help="deep model to blend with (e.g. reco-deep, from `lifelong finetune`; with "
             "--task ranking one from `lifelong finetune --task ranking`): follow its "
             "production version, fold each event into its user side and publish the "
             "online + deep blend")] = None,
    wait_for_blend: Annotated[bool, typer.Option(
        help="start even if --blend-with has no production version yet (River alone until "
             "it is promoted); without it an unknown model is an error")] = False,
    sharded: Annotated[bool | None, typer.Option(
        "--sharded/--no-sharded",
        help="partitions are shards: one learner, version chain <model>.p<k> and offsets per "
             "partition, shared by every process of the group (docs/scaling.md) "
             + Settings.describe("sharded"))] = None,
    impressions_topic: Annotated[str | None, _opt(
        "impressions_topic", "ranking: join clicks to the impressions logged on this topic "
        "and learn shown-but-unclicked items as negatives (none: no join)")] = None,
    impression_window: Annotated[float | None, _opt(
        "impression_window", "seconds (event time) a click may follow its impression")]
    = None,
    max_impressions: Annotated[int | None, _opt(
        "max_impressions", "live impressions kept in the join state")] = None,
) -> None:
    """Run the online learner: consume, predict-then-learn, publish versions, serve /metrics."""
    from learning.task import get_task
    from lifelong.wiring import build_online_run

    with cli_errors():
        settings = Settings.from_env(
            model=model, model_kind=kind, task=task, group_id=group, topic=topic,
            publish_every_events=publish_every_events,
            publish_every_seconds=publish_every_seconds, metrics_port=metrics_port,
            keep_last=keep_last, sharded=sharded, publish_max_share=publish_max_share,
            compact_after=compact_after, compact_share=compact_share,
            impressions_topic=impressions_topic, impression_window=impression_window,
            max_impressions=max_impressions)
    if settings.sharded:
        _learn_sharded(settings, _clip(clip), resume=resume, blend_with=blend_with,
                       max_events=max_events, idle_timeout=idle_timeout)
        return
    with cli_errors():
        run = build_online_run(settings, clip=_clip(clip), resume=resume, blend_with=blend_with,
                               wait_for_blend=wait_for_blend)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    learning_task = get_task(settings.task)
    console.print(f"learning {settings.model!r} ({settings.task}: {settings.model_kind}) from "
                  f"{settings.topic!r}; metrics on http://{run.metrics_server.target}/metrics"
                  + (f"; resumed from version {run.resumed_from}" if run.resumed_from else ""))
    with cli_errors(), _progress() as bar:
        bar_task = bar.add_task("learning", total=max_events, info="")

        def show(stats: Any) -> None:
            name, value = learning_task.headline(run.worker.learner)
            bar.update(bar_task, completed=stats.consumed,
                       info=f"invalid {stats.invalid}  {name} {value:.3f}  "
                            f"versions {len(stats.versions)}")

        try:
            stats = run.worker.run(stop=stop, max_events=max_events, idle_timeout=idle_timeout,
                                   on_batch=show)
        finally:
            run.close()
    out.print(f"consumed {stats.consumed}, learned {stats.learned}, invalid {stats.invalid}, "
              f"versions {stats.versions[-1] if stats.versions else '-'}")


def _learn_sharded(settings: Settings, clip: tuple[float, float] | None, *, resume: bool,
                   blend_with: str | None, max_events: int | None,
                   idle_timeout: float | None) -> None:
    """``learn --sharded``: a :class:`consumers.shards.ShardedRunner` over the group's share."""
    from lifelong.shard_wiring import build_sharded_run

    with cli_errors():
        if blend_with or not resume:
            raise ConfigError("--sharded always resumes each shard from its latest version and "
                              "learns River alone: drop --blend-with / --no-resume")
        run = build_sharded_run(settings, clip=clip)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"learning {settings.model!r} sharded over the {run.manifest.partitions} "
                  f"partitions of {settings.topic!r} (group {settings.group_id!r}); metrics on "
                  f"http://{run.metrics_server.target}/metrics")
    with cli_errors(), _progress() as bar:
        bar_task = bar.add_task("learning", total=max_events, info="")

        def show(stats: Any) -> None:
            bar.update(bar_task, completed=stats.consumed,
                       info=f"shards {sorted(run.runner.shards)}  invalid {stats.invalid}  "
                            f"versions {len(stats.versions)}")

        try:
            stats = run.runner.run(stop=stop, max_events=max_events, idle_timeout=idle_timeout,
                                   on_batch=show)
            owned = sorted(run.runner.shards)
        finally:
            run.close()
    out.print(f"consumed {stats.consumed}, learned {stats.learned}, invalid {stats.invalid}, "
              f"versions {len(stats.versions)}, shards at the end {owned}")


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option("--data", "-d", help="events file", exists=True,
                                       dir_okay=False)],
    fmt: Fmt = "movielens",
    model: Annotated[str | None, typer.Option(
        help="rating: River model kind (BiasedMF, FunkMF, FMRegressor, Baseline), or "
        "`lifelong` for River + deep blend (default: BiasedMF); ranking: rerank, blend, "
        "decayed-popularity, popularity, bpr, bpr-pop, co-occurrence, sequence, rerank-knn, "
        "rerank-mlp, rerank-bpr (a third of rerank's speed), rerank-bpr2 (two BPR parts), "
        "rerank-bpr-uni (the best, a fifth of rerank's speed) (default: rerank)")] = None,
    task: Annotated[str | None, typer.Option(
        help="rating (regress the value) or ranking (implicit, prequential HR/NDCG) "
        "(default: rating)")] = None,
    k: Annotated[int | None, typer.Option(help="ranking: list length (default: 10)")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="report path")]
    = Path("report.json"),
    columns: Columns = None,
    sort_by_time: Annotated[bool, typer.Option(help="learn in time order")] = False,
    clip: Clip = None,
    seed: Annotated[int, typer.Option(help="model seed")] = 42,
    online: Annotated[str | None, typer.Option(
        help="lifelong: the River model [default: BiasedMF]", show_default=False)] = None,
    deep: Annotated[str | None, typer.Option(
        help="lifelong: torch model, mf or two_tower [default: mf]", show_default=False)] = None,
    round_every: Annotated[int | None, typer.Option(
        help="lifelong: fine-tune every N events [default: 5000]", show_default=False)] = None,
    epochs: Annotated[int | None, typer.Option(
        help="lifelong: epochs per round [default: 5]", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="lifelong: minibatch size [default: 1024]", show_default=False)] = None,
    device: Annotated[str | None, typer.Option(
        help="lifelong: auto, cpu or cuda [default: auto]", show_default=False)] = None,
    max_bad_rows: MaxBadRows = 100,
    report_dir: Annotated[Path | None, typer.Option("--report", help="also draw the run "
                                                    "(HTML + PNG) into this folder")] = None,
    series_every: Annotated[int, typer.Option(help="--report: a point every N events")]
    = 1000,
) -> None:
    """Replay a file through the same learner code as production, no services needed."""
    from lifelong.commands import evaluate_file

    with cli_errors(), _progress() as bar:

        bar_task = bar.add_task("evaluating", total=None, info="")
        def show(stats: Any, figure: str) -> None:
            bar.update(bar_task, completed=stats.consumed, info=figure)

        given = {"online": online, "kind": deep, "round_every": round_every,
                 "epochs": epochs, "batch_size": batch_size, "device": device}
        deep_options = {k: v for k, v in given.items() if v is not None}  # else the defaults
        report = evaluate_file(data, fmt=fmt, model=model, columns=columns,
                               sort_by_time=sort_by_time, clip=_clip(clip), seed=seed,
                               on_progress=show, on_total=lambda n: bar.update(bar_task, total=n),
                               lifelong=deep_options, quality=Settings.from_env().quality,
                               max_bad_rows=None if max_bad_rows < 0 else max_bad_rows,
                               series_every=series_every if report_dir else None,
                               task=task or "rating", k=k)
    output.write_text(json.dumps(report, indent=2) + "\n")
    if report_dir is not None:
        from lifelong.report_cli import write_report

        with cli_errors():
            out.print(f"report: {write_report(output, report_dir)}")
    figures = "  ".join(f"{key} {report[key]:.4f}" if report[key] is not None else f"{key} -"
                        for key in report["headline"])
    out.print(f"events {report['events']}  invalid {report['invalid']}  "
              f"quarantined {report.get('quarantined', 0)}  {figures}  "
              f"{report['events_per_second']:.0f} events/s -> {output}")
    broken = {key: report[key] for key in report["headline"]
              if report[key] is not None and not math.isfinite(report[key])}
    if broken:
        raise fail(f"the model's figures are not finite ({broken}): a poison value got "
                   f"through; see {output}", 1)


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="synthetic events to stream")] = 20_000,
    drift_at: Annotated[int | None, typer.Option(help="drift point (default: half way)")]
    = None,
    invalid_rate: Annotated[float, typer.Option(help="share of broken records")] = 0.01,
    seed: Annotated[int, typer.Option(help="random seed")] = 42,
    report_dir: Annotated[Path | None, typer.Option("--report", help="also draw the run "
                                                    "(HTML + PNG) into this folder")] = None,
) -> None:
    """The walking skeleton end to end: services, topics, stream, learn, publish, summary."""
    from lifelong.demo import run_demo

    with cli_errors():
        run_demo(console, out, events=events, drift_at=drift_at, invalid_rate=invalid_rate,
                 seed=seed, progress=_progress, report_dir=report_dir)


def _opt(field_name: str, text: str) -> Any:
    """A fine-tune option: default None (Settings decides), effective default in --help."""
    return typer.Option(help=f"{text} {Settings.describe(field_name)}", show_default=False)


@app.command()
def finetune(
    model: Annotated[str | None, typer.Option(help="deep model name in the store [default: "
                                              "$LIFELONG_MODEL-deep; env "
                                              "LIFELONG_FINETUNE_MODEL]")] = None,
    kind: Annotated[str | None, _opt("finetune_kind", "torch model: mf or two_tower")] = None,
    task: Annotated[str | None, _opt("task", "rating (MSE on the value) or ranking (events "
                                     "as weighted positives, gated on NDCG@10)")] = None,
    loss: Annotated[str | None, _opt("finetune_loss", "ranking loss: softmax or bpr")] = None,
    negatives: Annotated[int | None, _opt("n_negatives", "popularity-sampled negatives")]
    = None,
    group: Annotated[str | None, _opt("finetune_group", "Kafka consumer group")] = None,
    topic: Annotated[str | None, _opt("topic", "events topic")] = None,
    round_every_events: Annotated[int | None, _opt("round_every_events",
                                                   "a round every N events")] = None,
    round_every_seconds: Annotated[float | None, _opt("round_every_seconds",
                                                      "... or T seconds")] = None,
    min_fresh: Annotated[int | None, _opt("min_fresh", "fewest fresh events for a round")]
    = None,
    holdout_share: Annotated[float | None, _opt("holdout_share",
                                                "share held back to score rounds")] = None,
    replay_capacity: Annotated[int | None, _opt("replay_capacity", "replay buffer samples")]
    = None,
    replay_ratio: Annotated[float | None, _opt("replay_ratio", "replayed per fresh sample")]
    = None,
    batch_size: Annotated[int | None, _opt("batch_size", "minibatch size")] = None,
    epochs: Annotated[int | None, _opt("epochs", "epochs per round")] = None,
    lr: Annotated[float | None, _opt("lr", "learning rate")] = None,
    factors: Annotated[int | None, _opt("n_factors", "embedding size")] = None,
    device: Annotated[str | None, _opt("device", "auto, cpu or cuda[:N]")] = None,
    max_regression: Annotated[float | None, _opt(
        "max_regression",
        "promote only if recent-slice error is at most this share above production")] = None,
    max_old_regression: Annotated[float | None, _opt("max_old_regression",
                                                     "... and old-slice error")] = None,
    seed: Annotated[int | None, _opt("finetune_seed", "model seed")] = None,
    backlog: Annotated[Path | None, typer.Option(
        help="cold start: train the first model on this file, easy to hard", exists=True,
        dir_okay=False)] = None,
    backlog_format: Annotated[str, typer.Option(help="movielens | csv | jsonl")] = "movielens",
    stages: Annotated[int, typer.Option(help="curriculum stages for --backlog")] = 3,
    max_events: Annotated[int | None, typer.Option(help="stop after N records")] = None,
    idle_timeout: Annotated[float | None, typer.Option(help="stop after T idle seconds")]
    = None,
    metrics_port: Annotated[int | None, _opt("metrics_port", "/metrics port (0: any)")]
    = None,
    clip: Clip = None,
    resume: Annotated[bool, typer.Option(help="warm-start from the stored deep model")] = True,
    threads: Annotated[int, typer.Option(
        envvar="LIFELONG_FINETUNE_THREADS", show_default=False,
        help="torch threads per process [default 0: max(1, CPUs available // "
             "LOCAL_WORLD_SIZE): the CPUs shared by the torchrun ranks of this "
             "machine]")] = 0,
) -> None:
    """Run the fine-tuner: rounds of torch training with replay, gated promotion, /metrics.

    Every option can also come from the environment (the variable in its help).
    """
    from learning.openmp import passive_wait

    passive_wait()  # before torch is imported: idle OpenMP threads sleep (learning/openmp.py)
    from learning.distributed import set_threads
    from lifelong.finetune_wiring import build_finetune_run, follow_finetune, join_group
    from stream.files import FileSource

    with cli_errors():
        set_threads(threads)  # before any torch work (docs/distributed_finetune.md)
        settings = Settings.from_env(
            topic=topic, metrics_port=metrics_port, finetune_model=model, finetune_kind=kind,
            finetune_group=group, round_every_events=round_every_events,
            round_every_seconds=round_every_seconds, min_fresh=min_fresh,
            holdout_share=holdout_share, replay_capacity=replay_capacity,
            replay_ratio=replay_ratio, batch_size=batch_size, epochs=epochs, lr=lr,
            n_factors=factors, device=device, max_regression=max_regression,
            max_old_regression=max_old_regression, finetune_seed=seed, task=task,
            finetune_loss=loss, n_negatives=negatives)
        group = join_group(settings)  # under torchrun: rank 0 reads and publishes
        if group is not None and group.rank != 0:
            rounds = follow_finetune(settings, group)
            out.print(f"rank {group.rank} of {group.world}: trained {rounds} rounds")
            return
        run = build_finetune_run(settings, clip=_clip(clip), resume=resume, group=group)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    worker = run.worker
    console.print(f"fine-tuning {run.model!r} ({settings.task}: {settings.finetune_kind}) on "
                  f"{worker.runner.finetuner.device} from {settings.topic!r} as group "
                  f"{settings.finetune_group!r}; metrics on "
                  f"http://{run.metrics_server.target}/metrics"
                  + (f"; resumed from version {run.resumed_from}" if run.resumed_from else ""))
    with cli_errors(), _progress() as bar:
        try:
            if backlog is not None and run.resumed_from:
                console.print(f"--backlog ignored: {run.model} already has version "
                              f"{run.resumed_from} to continue from")
            elif backlog is not None:
                task = bar.add_task("cold start (curriculum)", total=None, info=str(backlog))
                first = worker.cold_start(FileSource(backlog, format=backlog_format),  # type: ignore[arg-type]
                                          stages=stages)
                bar.update(task, total=1, completed=1)
                out.print(first.summary() if first else f"{backlog}: no valid events")
            task = bar.add_task("fine-tuning", total=max_events, info="")

            def show(stats: Any) -> None:
                busy = "  [training]" if worker.round_running else ""
                bar.update(task, completed=stats.consumed,
                           info=f"pending {len(worker.pending)}  rounds {len(stats.rounds)}  "
                                f"promoted {stats.promotions}{busy}")

            stats = worker.run(stop=stop, max_events=max_events, idle_timeout=idle_timeout,
                               on_batch=show, on_round=lambda r: out.print(r.summary()))
        finally:
            run.close()
    out.print(f"consumed {stats.consumed}, valid {stats.valid}, invalid {stats.invalid}, "
              f"duplicates {stats.duplicates}, alarms {stats.alarms}, rounds "
              f"{len(stats.rounds)}, promoted {stats.promotions}, versions "
              f"{', '.join(map(str, stats.versions)) or '-'}")


def main(argv: list[str] | None = None) -> Callable[..., Any] | None:
    """Entry point of the ``lifelong`` script."""
    return app(args=argv if argv is not None else sys.argv[1:])
