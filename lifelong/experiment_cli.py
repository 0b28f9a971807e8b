"""``lifelong experiment ...``: experiments on synthetic streams with known drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lifelong.errors import cli_errors

__all__ = ["experiment_app"]

out = Console()
console = Console(stderr=True)
experiment_app = typer.Typer(rich_markup_mode=None,
                             help="Experiments on synthetic streams with known drift.",
                             no_args_is_help=True)


@experiment_app.command("forgetting")
def forgetting(
    events: Annotated[int, typer.Option(help="events in the stream")] = 60_000,
    regimes: Annotated[int, typer.Option(help="regimes (drift points + 1)")] = 3,
    drift_kind: Annotated[str, typer.Option(help="population or tastes")] = "population",
    kind: Annotated[str, typer.Option(help="torch model: mf or two_tower")] = "mf",
    epochs: Annotated[int, typer.Option(help="epochs per regime")] = 5,
    replay_ratio: Annotated[float, typer.Option(help="replayed samples per fresh one")] = 1.0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "cpu",
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSON results")] = None,
) -> None:
    """Compare fine-tuning without replay, with replay, and full retraining.

    Exits 1 when replay does not remove at least half of the forgetting within 2% of the
    recent-slice error of fine-tuning without replay.
    """
    from learning.experiment import forgetting_experiment, verdict

    with cli_errors(), console.status("training") as status:
        results = forgetting_experiment(
            n_events=events, regimes=regimes, drift_kind=drift_kind, kind=kind, epochs=epochs,
            replay_ratio=replay_ratio, device=device, seed=seed,
            on_step=lambda s, r: status.update(f"{s}: regime {r + 1}/{regimes} done"))
    table = Table("strategy", "recent-slice RMSE", "old-slice RMSE", "BWT (+ = forgets)",
                  "seconds", title=f"forgetting, {events} events, {regimes} regimes "
                  f"({drift_kind} drift), {kind}")
    for name, r in results.items():
        table.add_row(name, f"{r['recent']:.4f}", f"{r['old']:.4f}", f"{r['bwt']:+.4f}",
                      f"{r['seconds']:.1f}")
    out.print(table)
    ok, why = verdict(results)
    out.print(("[green]PASS[/] " if ok else "[red]FAIL[/] ") + why)
    if output is not None:
        output.write_text(json.dumps({"results": results, "pass": ok, "verdict": why},
                                     indent=2) + "\n")
    if not ok:
        raise typer.Exit(1)
