"""``lifelong services``: start, stop and check Kafka, Redis and Prometheus."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deploy.base import SERVICES, ServiceError, lifelong_home, redact
from deploy.env import env_file, export_lines
from deploy.services import down, resolve, status, up

services_app = typer.Typer(rich_markup_mode=None,
    help="Start, stop and check Kafka, Redis and Prometheus: from the environment "
    "(KAFKA_BOOTSTRAP_SERVERS, REDIS_URL, PROMETHEUS_URL) or run locally on 127.0.0.1.",
    no_args_is_help=True,
)

Names = Annotated[list[str] | None, typer.Argument(
    help=f"services ({', '.join(SERVICES)}); default: all", show_default=False)]


def _names(names: list[str] | None) -> list[str]:
    chosen = names or list(SERVICES)
    unknown = [n for n in chosen if n not in SERVICES]
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(SERVICES)}")
    return chosen


@services_app.command("up")
def up_command(names: Names = None) -> None:
    """Start the services that are not running (first Kafka start fetches jars via Maven)."""
    console = Console(stderr=True)
    for name in _names(names):
        with console.status(f"[bold]{name}[/]: starting or checking ..."):
            try:
                endpoint = up([name])[0]
            except ServiceError as exc:
                console.print(f"[bold red]✗ {name}[/]: {exc.reason}")
                raise typer.Exit(1) from exc
        console.print(f"[green]✓[/] {name:<10} {redact(endpoint.address)}  ({endpoint.origin})")
    console.print(f"addresses: [bold]source {env_file(lifelong_home())}[/]")


@services_app.command("down")
def down_command(names: Names = None) -> None:
    """Stop the services the local launcher started (their data is kept)."""
    console = Console(stderr=True)
    chosen = _names(names)
    with console.status("stopping ..."):
        stopped = down(chosen)
    for name in chosen:
        mark = "[green]stopped[/]" if name in stopped else "[dim]was not running locally[/]"
        console.print(f"{name:<10} {mark}")


@services_app.command("status")
def status_command(names: Names = None) -> None:
    """Show where each service is and whether it is healthy; exit code 1 if any is not."""
    statuses = status(_names(names))
    table = Table(title=f"lifelong services (home {lifelong_home()})")
    for column in ("name", "origin", "address", "healthy", "detail"):
        table.add_column(column, overflow="fold")
    for s in statuses:
        healthy = "[green]yes[/]" if s.healthy else "[red]no[/]"
        table.add_row(s.name, s.origin, redact(s.address), healthy, s.detail)
    Console().print(table)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


@services_app.command("env")
def env_command(names: Names = None) -> None:
    """Print ``export`` lines for running services: ``eval "$(lifelong services env)"``."""
    try:
        endpoints = [resolve(name, start=False) for name in _names(names)]
    except ServiceError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    typer.echo(export_lines(endpoints, home=lifelong_home()))
