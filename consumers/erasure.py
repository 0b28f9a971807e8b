"""Erasure of one user from a published model: forget, publish, audit, list and purge.

:func:`forget_user` loads the ``latest`` version of a model (a
:class:`~consumers.checkpoint.Checkpoint`), removes the user from the learner
(:class:`learning.erasure.Forgettable`) and from the data-quality gates' per-user rate
windows, and publishes the result as a new version with the same offsets (``parent`` = the
version it came from). The dedup window holds only ``event_id`` values, no per-user data,
and is kept. The erasure is recorded in the model's ``erasures`` audit log with a one-way
*receipt* of the pseudonym (:func:`receipt`), the time and the versions affected: neither
the raw id nor the pseudonym is stored, yet whoever holds the key can show a given user was
erased. Older versions still hold the user: the report lists them, :func:`purge_user`
deletes them (``lifelong models gc --purge-user``).

The user is given raw; with a :class:`~stream.pseudonym.Pseudonymizer` every pseudonym it
may have (current and retired keys) is erased, without one (pseudonyms off) the raw id is.

A learner still running keeps the user in memory and would publish them again: stop it
first, or let it restart from the erased version (docs/privacy.md).

>>> from model_store import Registry
>>> from model_store.signing import Signer
>>> from learning.online import OnlineLearner
>>> from consumers.checkpoint import Checkpoint
>>> from stream.schema import Event
>>> reg = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-doc-key"))
>>> learner = OnlineLearner()
>>> _ = learner.learn_one(Event("e1", "alice", "i1", "rating", 5.0, 1.0))
>>> _ = reg.publish_object("reco", Checkpoint(learner), metadata={"offsets": {"events:0": 1}})
>>> report = forget_user(reg, "reco", "alice")
>>> report.version, report.parent, report.removed > 0, report.older
(2, 1, True, [1])
>>> reg.get("reco", 2).offsets, purge_user(reg, "reco", "alice").deleted
({'events:0': 1}, [1])
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from consumers.checkpoint import Checkpoint
from learning.erasure import Forgettable, forget_deep_user, forget_finetuner_user
from model_store import Registry
from model_store.errors import ModelStoreError
from model_store.records import ModelVersion
from stream.pseudonym import Pseudonymizer

__all__ = ["AUDIT_KIND", "ErasureReport", "PurgeReport", "decode_request", "encode_request",
           "erase_deep", "erase_in_worker", "forget_checkpoint", "forget_deep_model",
           "forget_user", "forget_user_if_held", "purge_before", "purge_user", "receipt",
           "versions_holding"]

if TYPE_CHECKING:
    from consumers.deep_publisher import DeepPublisher
    from learning.finetune import FineTuner
    from learning.forgetting import ForgettingTracker
    from learning.replay import ReplayBuffer
    from learning.rounds import RoundBatch

log = logging.getLogger(__name__)

AUDIT_KIND = "erasures"


def receipt(user_id: str) -> str:
    """A one-way receipt of a (pseudonymous) id for the audit log: ``e1:<32 hex>``.

    >>> receipt("p1:k1:abc") == receipt("p1:k1:abc"), receipt("p1:k1:abc").startswith("e1:")
    (True, True)
    """
    digest = hashlib.sha256(b"lifelong-erasure-receipt:" + user_id.encode("utf-8"))
    return "e1:" + digest.hexdigest()[:32]


def _ids(user: str, pseudonymizer: Pseudonymizer | None) -> list[str]:
    return [user] if pseudonymizer is None else pseudonymizer.pseudonyms(user)


def forget_checkpoint(checkpoint: Checkpoint, ids: list[str]) -> int:
    """Remove ``ids`` from a checkpoint's learner and gate state; return entries removed."""
    learner = checkpoint.learner
    if not isinstance(learner, Forgettable):
        raise TypeError(f"{type(learner).__name__} cannot forget a user (no forget_user); "
                        "see docs/privacy.md for what is covered")
    removed = sum(learner.forget_user(uid) for uid in ids)
    for states in checkpoint.quality.values():  # per-user rate windows: {user: [start, n]}
        for windows in states:
            for uid in ids:
                if isinstance(windows, dict) and windows.pop(uid, None) is not None:
                    removed += 1
    return removed


def versions_holding(registry: Registry, model: str, ids: list[str], *,
                     below: int | None = None) -> list[int]:
    """Numbers of the stored versions (under ``below``) whose blob contains any of ``ids``."""
    needles = [uid.encode("utf-8") for uid in ids]
    found = []
    for version in registry.versions(model):
        if below is not None and version.number >= below:
            continue
        blob = registry.read_blob(model, version.number)
        if any(n in blob for n in needles):
            found.append(version.number)
    return found


@dataclass
class ErasureReport:
    """What :func:`forget_user` did (no raw id, no pseudonym: ``receipts`` only)."""

    model: str
    receipts: list[str]
    removed: int
    version: int
    parent: int
    older: list[int]
    at: float
    audit_id: str = ""


def forget_user(registry: Registry, model: str, user: str, *,
                pseudonymizer: Pseudonymizer | None = None, actor: str = "",
                clock: Callable[[], float] = time.time) -> ErasureReport:
    """Erase raw id ``user`` from the latest version of ``model``; publish and audit it."""
    report = _forget(registry, model, user, pseudonymizer, actor, clock, only_if_held=False)
    assert report is not None
    return report


def forget_user_if_held(registry: Registry, model: str, user: str, *,
                        pseudonymizer: Pseudonymizer | None = None, actor: str = "",
                        clock: Callable[[], float] = time.time) -> ErasureReport | None:
    """:func:`forget_user`, publishing nothing (``None``) if the latest version lacks the user.

    For the shards of a sharded model: only the user's shard gets a new version.
    """
    return _forget(registry, model, user, pseudonymizer, actor, clock, only_if_held=True)


def _forget(registry: Registry, model: str, user: str, pseudonymizer: Pseudonymizer | None,
            actor: str, clock: Callable[[], float], *,
            only_if_held: bool) -> ErasureReport | None:
    ids = _ids(user, pseudonymizer)
    current, obj = registry.load_object(model, "latest")
    checkpoint = Checkpoint.of(obj)
    removed = forget_checkpoint(checkpoint, ids)
    if only_if_held and not removed:
        return None
    metadata: dict[str, Any] = {**current.extra, "offsets": current.offsets,
                                "metrics": current.metrics,
                                "tags": {**current.tags, "erasure": "true"}}
    new = registry.publish_object(model, checkpoint, metadata=metadata, parent=current.number)
    older = versions_holding(registry, model, ids, below=new.number)
    now = clock()
    receipts = [receipt(uid) for uid in ids]
    audit_id = registry.record_audit(model, AUDIT_KIND, {
        "receipts": ",".join(receipts), "at": repr(now), "removed": removed,
        "version": new.number, "parent": current.number,
        "older": ",".join(map(str, older)), "actor": actor,
        "key_id": "" if pseudonymizer is None else pseudonymizer.key_id})
    log.info("model %s: erased a user (%d entries) in version %d; %d older version(s) hold "
             "them", model, removed, new.number, len(older))
    return ErasureReport(model, receipts, removed, new.number, current.number, older, now,
                         audit_id)


@dataclass
class PurgeReport:
    """Versions deleted, and those kept because an alias points at them (alias names)."""

    deleted: list[int] = field(default_factory=list)
    aliased: dict[int, list[str]] = field(default_factory=dict)


def _purge(registry: Registry, model: str, numbers: list[int], move_to: int | None,
           actor: str) -> PurgeReport:
    """Delete ``numbers``; an aliased one is kept, or its aliases move to ``move_to`` first.

    A base or delta that an aliased delta is built on (docs/publishing.md) counts as aliased
    by that alias; one that ``move_to``'s own chain needs is always kept.
    """
    report = PurgeReport()
    aliases = registry.aliases(model)
    needs = _chain_needs(registry, model, aliases)
    target = set(_chain(registry, model, move_to)[:-1]) if move_to is not None else set()
    for number in numbers:
        names = sorted(a for a, n in aliases.items() if n == number)
        names += sorted(set(needs.get(number, [])) - set(names))
        if names and move_to is not None:
            for alias in names:
                if aliases.get(alias) != move_to:
                    registry.set_alias(model, alias, move_to, actor=actor or "erasure")
                    aliases[alias] = move_to
            names = sorted(a for a, n in aliases.items() if n == move_to) if number in target \
                else []
        if names:
            report.aliased[number] = names
            continue
        if registry.backend.delete(model, number, announced_before=float("inf")):
            report.deleted.append(number)
    if report.deleted:
        registry.record_audit(model, "purges", {"deleted": ",".join(map(str, report.deleted)),
                                                "at": repr(time.time()), "actor": actor})
    return report


def _chain(registry: Registry, model: str, number: int) -> list[int]:
    """The versions ``number``'s state is made of, its base first (itself, if whole)."""
    from model_store.delta import chain_of

    return [v.number for v in chain_of(registry, model, registry.get(model, number))]


def _chain_needs(registry: Registry, model: str, aliases: dict[str, int]
                 ) -> dict[int, list[str]]:
    """Version number -> the aliases that point at a delta built on it."""
    out: dict[int, list[str]] = {}
    for alias, number in aliases.items():
        try:
            chain = _chain(registry, model, number)
        except ModelStoreError:  # a version gone or broken: nothing to protect through it
            continue
        for member in chain[:-1]:
            out.setdefault(member, []).append(alias)
    return out


def purge_user(registry: Registry, model: str, user: str, *,
               pseudonymizer: Pseudonymizer | None = None, move_aliases: bool = False,
               actor: str = "") -> PurgeReport:
    """Delete every version but ``latest`` that still holds ``user``.

    A version an alias points at is never deleted behind it: it is kept and reported,
    unless ``move_aliases``, which first moves those aliases to ``latest`` (the erased
    version; :func:`forget_user` first). ``latest`` itself must not hold the user.
    """
    latest = registry.latest(model)
    if latest is None:
        return PurgeReport()
    ids = _ids(user, pseudonymizer)
    holding = versions_holding(registry, model, ids, below=latest.number + 1)
    if set(holding) & set(_chain(registry, model, latest.number)):  # base + deltas hold it
        raise ModelStoreError(f'model "{model}": the latest version {latest.number} still '
                              "holds the user: run forget first")
    holding = [n for n in holding if n < latest.number]
    return _purge(registry, model, holding, latest.number if move_aliases else None, actor)


def purge_before(registry: Registry, model: str, number: int, *, move_aliases: bool = False,
                 actor: str = "") -> PurgeReport:
    """Delete every version numbered below ``number`` (aliased ones as in :func:`purge_user`)."""
    older = [v.number for v in registry.versions(model) if v.number < number]
    latest = registry.latest(model)
    move_to = latest.number if (move_aliases and latest is not None) else None
    return _purge(registry, model, older, move_to, actor)


# erasure requests on a topic -----------------------------------------------------------
def encode_request(user_id: str) -> bytes:
    """An erasure request for the ``erasures`` topic: ``{"erase_user": <id>}``.

    Send the pseudonym (``Pseudonymizer(...)(raw)``), never the raw id, when pseudonyms
    are on: the topic then holds no raw id.

    >>> decode_request(encode_request("p1:k1:ab")), decode_request(b"junk")
    ('p1:k1:ab', None)
    """
    return json.dumps({"erase_user": user_id}).encode("utf-8")


def decode_request(raw: bytes | None) -> str | None:
    """The user id of an erasure request, or ``None`` when ``raw`` is not one."""
    try:
        body = json.loads(raw or b"")
    except ValueError:
        return None
    user = body.get("erase_user") if isinstance(body, dict) else None
    return user if isinstance(user, str) and user.strip() else None


def erase_in_worker(learner: Any, quality: Any, user_id: str) -> int:
    """Forget ``user_id`` in a running learner and its quality gates; entries removed."""
    if not isinstance(learner, Forgettable):
        raise TypeError(f"{type(learner).__name__} cannot forget a user (no forget_user)")
    removed = learner.forget_user(user_id)
    state = quality.snapshot()
    for states in state.values():
        for windows in states:
            if isinstance(windows, dict) and windows.pop(user_id, None) is not None:
                removed += 1
    quality.restore(state)
    return removed


# the deep model (fine-tuner) -------------------------------------------------------------
def _erased_metadata(version: ModelVersion) -> dict[str, Any]:
    return {**version.extra, "offsets": version.offsets, "metrics": version.metrics,
            "tags": {**version.tags, "erasure": "true"}}


def erase_deep(publisher: DeepPublisher, ids: list[str], *, finetuner: FineTuner | None = None,
               buffer: ReplayBuffer | None = None, tracker: ForgettingTracker | None = None,
               batches: list[RoundBatch] | None = None) -> list[int]:
    """Erase ``ids`` from a deep model: in memory (fine-tuner) and in its served versions.

    With a ``finetuner`` (the fine-tune worker's, no round running) the ids leave its id
    table, embedding and optimizer rows, ``buffer``, ``tracker``'s old slices and the
    pending ``batches``, and the result is published as the next version (``candidate``).
    Without one, ``latest`` is loaded and erased instead. A ``production`` version other
    than ``latest`` that holds an id is erased too and published first, then promoted;
    ``production`` follows ``latest`` when it pointed at it. Returns the versions published
    (none when no served version nor the fine-tuner held the ids).
    """
    registry, model = publisher.registry, publisher.model
    removed = 0
    if finetuner is not None:
        for uid in ids:
            removed += forget_finetuner_user(finetuner, uid, buffer=buffer, tracker=tracker,
                                             batches=batches or [])
    latest = registry.latest(model)
    prod = registry.get_alias(model, "production")

    def holds(number: int) -> bool:
        blob = registry.read_blob(model, number)
        return any(uid.encode("utf-8") in blob for uid in ids)

    published = []
    if prod is not None and (latest is None or prod != latest.number) and holds(prod):
        found = publisher.load(prod)
        if found is not None:
            for uid in ids:
                forget_deep_user(found[1], uid)
            new = publisher.publish(found[1], metadata=_erased_metadata(found[0]))
            publisher.promote(new.number, reason="erasure")
            published.append(new.number)
    if latest is not None and (removed or holds(latest.number)):
        rec = finetuner.recommender if finetuner is not None else None
        if rec is None:
            found = publisher.load(latest.number)
            rec = found[1] if found is not None else None
            for uid in ids if rec is not None else []:
                forget_deep_user(rec, uid)
        if rec is not None:
            new = publisher.publish(rec, metadata=_erased_metadata(latest))
            if prod == latest.number:
                publisher.promote(new.number, reason="erasure")
            published.append(new.number)
    publisher._production = None  # the cached production model may hold the user
    if published:
        log.info("deep model %s: erased a user (%d entries in memory), published %s", model,
                 removed, published)
    return published


def forget_deep_model(registry: Registry, model: str, user: str, *,
                      pseudonymizer: Pseudonymizer | None = None, actor: str = "") -> list[int]:
    """Erase raw id ``user`` from the served versions of deep model ``model``; audit it.

    For a stopped fine-tuner (``lifelong forget``); a running one erases on the erasure
    topic (:class:`~consumers.finetune_worker.FineTuneWorker`). Returns the versions
    published; the audit record lists them and the older versions still holding the user.
    """
    from consumers.deep_publisher import DeepPublisher

    ids = _ids(user, pseudonymizer)
    published = erase_deep(DeepPublisher(registry, model, actor=actor or "erasure"), ids)
    if published:
        older = versions_holding(registry, model, ids, below=published[-1])
        registry.record_audit(model, AUDIT_KIND, {
            "receipts": ",".join(receipt(uid) for uid in ids), "at": repr(time.time()),
            "version": published[-1], "published": ",".join(map(str, published)),
            "older": ",".join(map(str, older)), "actor": actor,
            "key_id": "" if pseudonymizer is None else pseudonymizer.key_id})
    return published
