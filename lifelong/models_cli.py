"""``lifelong models ...``: the model store from the command line.

Every command reads :class:`~lifelong.config.Settings` from the environment (``REDIS_URL``
or the local launcher, ``LIFELONG_PREFIX``, ``LIFELONG_SIGNING_KEY``) and opens the
registry with :func:`lifelong.wiring.open_registry`. Expected failures (a missing version,
a tampered blob, Redis refusing the credentials) are one red line on stderr and exit code
1 (2 for bad input). Results go to stdout, one line per item, so they can be piped.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from lifelong.config import Settings
from lifelong.errors import cli_errors, fail

if TYPE_CHECKING:
    from model_store import ModelVersion, Registry, StoreEvent

__all__ = ["event_line", "models_app", "version_info"]

out = Console()
err = Console(stderr=True)
models_app = typer.Typer(rich_markup_mode=None, help="Model versions in the Redis model store.",
                         no_args_is_help=True)

Model = Annotated[str, typer.Argument(help="model name")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]
Actor = Annotated[str | None, typer.Option(help="who does it, for the alias history "
                                                "(default: the login name)")]


@contextmanager
def _redis_errors() -> Iterator[None]:
    """Redis refusing the credentials, or unreachable: one red line, exit 1, no password."""
    import redis

    try:
        yield
    except redis.AuthenticationError as exc:
        raise fail(f"Redis refused the credentials ({exc}); check the user and password "
                   "in REDIS_URL", 1) from exc
    except redis.RedisError as exc:
        raise fail(f"Redis: {exc}", 1) from exc


@contextmanager
def _store() -> Iterator[Registry]:
    """The registry the settings point at; store and Redis failures become one red line."""
    from lifelong import wiring

    with cli_errors():
        registry = wiring.open_registry(Settings.from_env())
        try:
            with _redis_errors():
                yield registry
        finally:
            registry.close()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _actor(given: str | None) -> str:
    if given:
        return given
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def version_info(v: ModelVersion, aliases: dict[str, int]) -> dict[str, Any]:
    """Everything recorded about one version, as JSON-ready values.

    >>> from model_store import ModelVersion
    >>> v = ModelVersion(model="reco", number=2, format="raw", sha256="ab", size=3, created=0.0)
    >>> info = version_info(v, {"latest": 2, "production": 1})
    >>> info["aliases"], info["created"], info["signed"]
    (['latest'], '1970-01-01T00:00:00+00:00', False)
    """
    parts = v.signature.split(":")
    return {
        "model": v.model, "version": v.number, "format": v.format, "sha256": v.sha256,
        "size": v.size, "created": _iso(v.created),
        "announced": _iso(v.announced) if v.announced else None, "parent": v.parent,
        "signed": bool(v.signature), "signature_key_id": parts[1] if len(parts) == 3 else None,
        "chunks": v.chunks, "chunk_size": v.chunk_size,
        "aliases": sorted(a for a, n in aliases.items() if n == v.number),
        "offsets": v.offsets, "metrics": v.metrics, "tags": v.tags, "extra": v.extra,
    }


def event_line(event: StoreEvent) -> str:
    """One human line for a publish or alias notice.

    >>> from model_store import StoreEvent
    >>> event_line(StoreEvent("alias", "reco", 8, "production", 0.0, 3, "ci"))
    '1970-01-01T00:00:00+00:00 alias   reco v8: production 3 -> 8 by ci'
    >>> event_line(StoreEvent("publish", "reco", 9, "", 0.0))
    '1970-01-01T00:00:00+00:00 publish reco v9 (latest not moved: a newer version exists)'
    >>> event_line(StoreEvent("alarm", "reco", 9, "", 0.0, detail={"alarm": "drift", "events": 5}))
    '1970-01-01T00:00:00+00:00 alarm   reco v9: drift {"events": 5}'
    """
    head = f"{_iso(event.ts)} {event.kind:<7} {event.model} v{event.version}"
    if event.kind == "alarm":
        by = f" by {event.actor}" if event.actor else ""
        rest = {k: v for k, v in event.detail.items() if k != "alarm"}
        return f"{head}: {event.detail.get('alarm', '?')} {json.dumps(rest)}{by}"
    if not event.alias:
        return f"{head} (latest not moved: a newer version exists)"
    previous = "-" if event.previous is None else event.previous
    by = f" by {event.actor}" if event.actor else ""
    return f"{head}: {event.alias} {previous} -> {event.version}{by}"


@models_app.command("list")
def models_list(
    model: Annotated[str | None, typer.Argument(help="one model (default: all)")] = None,
    as_json: AsJson = False,
) -> None:
    """List model versions with their metadata."""
    from lifelong.commands import list_versions

    with cli_errors(), _redis_errors():
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


@models_app.command("show")
def models_show(
    model: Model,
    version: Annotated[str, typer.Argument(help="version number or alias")] = "latest",
    as_json: AsJson = False,
) -> None:
    """Show all metadata of one version, and which aliases point at it."""
    with _store() as registry:
        info = version_info(registry.get(model, version), registry.aliases(model))
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if isinstance(value, dict | list):
            value = json.dumps(value) if value or key == "aliases" else "-"
        typer.echo(f"{key:<17} {'-' if value is None else value}")


@models_app.command("promote")
def models_promote(
    model: Model,
    version: Annotated[str, typer.Argument(help="version number (or an alias to copy)")],
    alias: Annotated[str, typer.Option(help="alias to move")] = "production",
    actor: Actor = None,
) -> None:
    """Point an alias (production by default) at a version."""
    with _store() as registry:
        change = registry.promote(model, version, alias, actor=_actor(actor))
    previous = "-" if change.previous is None else change.previous
    typer.echo(f"{model} {alias}: {previous} -> {change.to}")


@models_app.command("rollback")
def models_rollback(
    model: Model,
    alias: Annotated[str, typer.Option(help="alias to roll back")] = "production",
    actor: Actor = None,
) -> None:
    """Move an alias back to the version it pointed at before."""
    with _store() as registry:
        change = registry.rollback(model, alias, actor=_actor(actor))
    typer.echo(f"{model} {alias}: {change.previous} -> {change.to} (rolled back)")


@models_app.command("gc")
def models_gc(
    model: Model,
    keep_last: Annotated[int, typer.Option(help="newest versions to keep")] = 10,
    grace_seconds: Annotated[float, typer.Option(
        help="keep versions created or announced this recently")] = 60.0,
    dry_run: Annotated[bool, typer.Option(help="only print what would be deleted")] = False,
    max_age: Annotated[float | None, typer.Option(
        help="also delete versions created more than S seconds ago (the newest excepted)")]
    = None,
    purge_user: Annotated[str | None, typer.Option(
        help="delete every version but latest that holds this raw user id ('-': stdin)")] = None,
    purge_before: Annotated[int | None, typer.Option(
        help="delete every version numbered below this one")] = None,
    move_aliases: Annotated[bool, typer.Option(
        help="with --purge-*: move aliases off purged versions to latest")] = False,
) -> None:
    """Delete old versions; aliased ones and their rollback targets are always kept."""
    if purge_user is not None or purge_before is not None:  # erasure (docs/privacy.md)
        from lifelong.privacy_cli import purge

        return purge(model, user=purge_user, before=purge_before, move_aliases=move_aliases,
                     actor=None)
    with _store() as registry:
        numbers = registry.gc(model, keep_last, grace_seconds=grace_seconds, dry_run=dry_run,
                              max_age_seconds=max_age)
    verb = "would delete" if dry_run else "deleted"
    listed = ", ".join(str(n) for n in numbers) or "nothing"
    typer.echo(f"{model}: {verb} {len(numbers)} version(s): {listed}")


@models_app.command("watch")
def models_watch(
    model: Model,
    alias: Annotated[str | None, typer.Option(
        help="only moves of this alias (latest: the publishes); default: every event")] = None,
    timeout: Annotated[float | None, typer.Option(help="stop after S seconds")] = None,
    from_start: Annotated[bool, typer.Option(
        help="first replay the retained log (about 10,000 events)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Print each publish and alias move as it happens, until Ctrl-C or --timeout."""
    with _store() as registry:
        current = registry.aliases(model)
        shown = {alias: current.get(alias)} if alias else current
        err.print(f"watching {model} ("
                  + (", ".join(f"{a} -> {n}" for a, n in sorted(shown.items())) or "no aliases")
                  + "); Ctrl-C to stop", highlight=False, soft_wrap=True)
        try:
            for entry_id, event in registry.follow(
                    model, after="0-0" if from_start else None, timeout=timeout):
                if alias is not None and event.alias != alias:
                    continue
                if as_json:
                    typer.echo(json.dumps({"id": entry_id, **msgspec.structs.asdict(event)}))
                else:
                    typer.echo(event_line(event))
        except KeyboardInterrupt:
            err.print("stopped")


@models_app.command("verify")
def models_verify(
    model: Model,
    version: Annotated[str | None, typer.Argument(
        help="version number or alias (default: every version)")] = None,
    require_signature: Annotated[bool, typer.Option(
        help="fail unless each blob carries a signature the configured key verifies")] = False,
) -> None:
    """Read blobs and check size, sha256 and the signature over blob and metadata.

    Exit 1 if any is refused. The signature covers the offsets, parent, format and the other
    metadata a learner acts on; with ``--require-signature`` old-style signatures (blob only)
    are refused too.
    """
    from model_store import ModelStoreError

    with _store() as registry:
        registry.require_signatures = registry.require_signatures or require_signature
        targets = ([registry.get(model, version)] if version is not None
                   else registry.versions(model))
        if not targets:
            raise fail(f'model "{model}" has no versions', 1)
        bad = 0
        for v in targets:
            try:
                for _ in registry.iter_blob(model, v.number):
                    pass  # the iterator checks size and sha256 after the last chunk
            except ModelStoreError as exc:
                if version is not None:
                    raise
                bad += 1
                typer.echo(f"{model} v{v.number}: FAILED: {exc}")
                continue
            typer.echo(f"{model} v{v.number}: ok ({v.size} bytes in {v.chunks} chunk(s), "
                       f"sha256 {v.sha256[:12]}, signature {_signature_state(v, registry)})")
        if bad:
            raise fail(f'{bad} of {len(targets)} version(s) of model "{model}" failed '
                       "verification", 1)


def _signature_state(v: ModelVersion, registry: Registry) -> str:
    if not v.signature:
        return "none"
    if registry.signer is None:
        return "present but not checked (no signing key configured)"
    from model_store.signing import is_legacy

    if is_legacy(v.signature):
        return (f"valid but old-style (key {registry.signer.key_id}; blob only, metadata not "
                "covered: --require-signature refuses it)")
    return f"valid (key {registry.signer.key_id}; blob and metadata)"


@models_app.command("migrate-keys")
def models_migrate_keys(
    dry_run: Annotated[bool, typer.Option(help="only print what would be moved")] = False,
) -> None:
    """Move a store to the hash-tagged key layout (`{model}`: Redis Cluster); run once.

    Stop the publishers first; see docs/model_store.md.
    """
    import redis

    from lifelong import wiring
    from model_store.migrate import migrate_hash_tags

    with cli_errors():
        settings = Settings.from_env()
        client = redis.Redis.from_url(wiring.redis_address(settings),
                                      **settings.redis_options())
        try:
            with _redis_errors():
                report = migrate_hash_tags(client, settings.prefix, dry_run=dry_run)
        finally:
            client.close()
    verb = "would move" if dry_run else "moved"
    for model, count in report.models.items():
        typer.echo(f"{model}: {verb} {count} key(s)")
    for model in report.skipped:
        typer.echo(f"{model}: keys in both layouts, left alone")
    typer.echo(f"{settings.prefix}: {verb} {report.keys} key(s) of {len(report.models)} "
               "model(s)")
