"""``lifelong forget --user ID`` and ``lifelong models gc --purge-user/--purge-before``.

Both read :class:`~lifelong.config.Settings` (the model, the store) and the pseudonym key
(:meth:`stream.pseudonym.Pseudonymizer.from_env`) from the environment. The user id is
given raw; ``--user -`` reads it from stdin, so it stays out of shell history and the
process list. Output never repeats the raw id nor the pseudonym: only audit receipts.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from lifelong.config import Settings
from lifelong.models_cli import _actor, _store

__all__ = ["forget", "purge"]

User = Annotated[str, typer.Option("--user", help="the raw user id ('-': read it from stdin)")]


def _raw_user(user: str) -> str:
    raw = sys.stdin.readline().strip() if user == "-" else user
    if not raw:
        raise typer.BadParameter("the user id is empty", param_hint="--user")
    return raw


def forget(
    user: User,
    model: Annotated[str | None, typer.Option(help="model name (default: LIFELONG_MODEL)")]
    = None,
    actor: Annotated[str | None, typer.Option(help="who asks, for the audit log")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    via_topic: Annotated[bool, typer.Option(
        help="send the request to the running learner (LIFELONG_ERASURE_TOPIC) instead")]
    = False,
) -> None:
    """Erase a user from the latest model version: publish a new one, audit it.

    Lists the older versions that still hold the user; purge them with
    ``lifelong models gc MODEL --purge-user ID``. Stop the learner first, or use
    ``--via-topic`` so the running learner erases the user itself (docs/privacy.md).
    Without ``--model``, the fine-tuner's deep model (``LIFELONG_DEEP_MODEL``) is erased
    too when the store has it.
    """
    from consumers.erasure import forget_deep_model, forget_user
    from model_store.router import read_manifest
    from stream.pseudonym import Pseudonymizer

    raw = _raw_user(user)
    settings = Settings.from_env()
    name = model or settings.model
    if via_topic:
        return _send_request(raw, name)
    deep = None if model else settings.deep_model  # the fine-tuner's model, when stored
    p = Pseudonymizer.from_env()
    with _store() as registry:
        if read_manifest(registry, name) is not None:
            return _forget_sharded(registry, name, raw, p, _actor(actor), as_json)
        report = forget_user(registry, name, raw, pseudonymizer=p, actor=_actor(actor))
        deep_versions: list[int] = []
        if deep and deep != name and registry.latest(deep) is not None:
            deep_versions = forget_deep_model(registry, deep, raw, pseudonymizer=p,
                                              actor=_actor(actor))
    if as_json:
        typer.echo(json.dumps({"model": name, "version": report.version,
                               "parent": report.parent, "removed": report.removed,
                               "older": report.older, "receipts": report.receipts,
                               "audit_id": report.audit_id, "deep_model": deep,
                               "deep_versions": deep_versions}))
        return
    if deep_versions:
        typer.echo(f"{deep}: version(s) {', '.join(map(str, deep_versions))} published "
                   "without the user")
    older = ", ".join(map(str, report.older)) or "none"
    typer.echo(f"{name}: version {report.version} (from {report.parent}) published without "
               f"the user ({report.removed} entries removed); receipt "
               f"{', '.join(report.receipts)}")
    typer.echo(f"{name}: older versions still holding the user: {older}")


def _forget_sharded(registry: Any, name: str, raw: str, p: Any, actor: str,
                    as_json: bool) -> None:
    """``forget`` on a sharded model: the shard(s) the user's events were keyed to.

    Events are keyed by the user id as the producer sent it (the raw id, or its pseudonym
    when the producer pseudonymises), so the candidates are the shards of both; only a
    shard whose latest version holds the user gets a new version.
    """
    from consumers.erasure import forget_user_if_held
    from model_store.router import read_manifest, shards_for

    manifest = read_manifest(registry, name)
    assert manifest is not None
    keys = [raw, *(p.pseudonyms(raw) if p is not None else [])]
    reports = []
    for shard in shards_for(manifest, keys):
        if registry.latest(shard) is None:
            continue
        report = forget_user_if_held(registry, shard, raw, pseudonymizer=p, actor=actor)
        if report is not None:
            reports.append(report)
    if as_json:
        typer.echo(json.dumps({"model": name, "sharded": True, "shards": [
            {"model": r.model, "version": r.version, "parent": r.parent,
             "removed": r.removed, "older": r.older, "receipts": r.receipts,
             "audit_id": r.audit_id} for r in reports]}))
        return
    if not reports:
        typer.echo(f"{name}: no shard of the {manifest.partitions} holds the user")
    for r in reports:
        older = ", ".join(map(str, r.older)) or "none"
        typer.echo(f"{r.model}: version {r.version} (from {r.parent}) published without the "
                   f"user ({r.removed} entries removed); receipt {', '.join(r.receipts)}; "
                   f"older versions still holding the user: {older}")


def purge(model: str, *, user: str | None, before: int | None, move_aliases: bool,
          actor: str | None) -> None:
    """The ``models gc --purge-user/--purge-before`` branch."""
    from consumers.erasure import purge_before, purge_user
    from stream.pseudonym import Pseudonymizer

    with _store() as registry:
        if user is not None:
            report = purge_user(registry, model, _raw_user(user),
                                pseudonymizer=Pseudonymizer.from_env(),
                                move_aliases=move_aliases, actor=_actor(actor))
        else:
            assert before is not None
            report = purge_before(registry, model, before, move_aliases=move_aliases,
                                  actor=_actor(actor))
    listed = ", ".join(map(str, report.deleted)) or "nothing"
    typer.echo(f"{model}: purged {len(report.deleted)} version(s): {listed}")
    for number, aliases in sorted(report.aliased.items()):
        typer.echo(f"{model}: kept version {number}: alias {', '.join(aliases)} points at it "
                   "(move it, or pass --move-aliases)")


def _send_request(raw: str, model: str) -> None:
    """Put an erasure request (the pseudonym when a key is set) on the erasure topic."""
    from consumers.erasure import encode_request
    from lifelong.errors import cli_errors, fail
    from lifelong.wiring import connect_topics
    from stream.producer import reliable_producer
    from stream.pseudonym import Pseudonymizer

    with cli_errors():
        settings = Settings.from_env()
        if not settings.erasure_topic:
            raise fail("--via-topic needs LIFELONG_ERASURE_TOPIC (the learner's erasure "
                       "topic)", 2)
        p = Pseudonymizer.from_env()
        bootstrap = connect_topics(settings)
        producer = reliable_producer(bootstrap, "lifelong-forget",
                                     **settings.kafka_client_config())
        try:
            producer.send(settings.erasure_topic, encode_request(raw if p is None else p(raw)))
            producer.flush(timeout=30)
        finally:
            producer.close()
    typer.echo(f"erasure request sent to {settings.erasure_topic}; the learner publishes a "
               "version without the user after its next batch")
