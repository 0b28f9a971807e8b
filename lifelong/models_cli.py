"""``lifelong models ...``: the model store from the command line."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lifelong.config import Settings
from lifelong.errors import cli_errors

__all__ = ["models_app"]

out = Console()
models_app = typer.Typer(help="Model versions in the Redis model store.", no_args_is_help=True)


@models_app.command("list")
def models_list(
    model: Annotated[str | None, typer.Argument(help="one model (default: all)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List model versions with their metadata."""
    from lifelong.commands import list_versions

    with cli_errors():
        rows = list_versions(Settings.from_env(), model)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("model", "version", "aliases", "format", "size", "created", "events",
                  "rmse", "sha256")
    for r in rows:
        table.add_row(r["model"], str(r["version"]), ",".join(r["aliases"]), r["format"],
                      str(r["size"]), r["created"], str(r.get("events_seen", "")),
                      f"{r['rmse']:.4f}" if r.get("rmse") is not None else "",
                      r["sha256"][:12])
    out.print(table if rows else "no model versions yet")


