"""The registry: a thin client that validates, hashes, signs and chunks; a backend stores.

Versions are numbered and immutable, aliases (``latest``, ``candidate``, ``production``)
move. The backend is chosen by URL scheme: ``redis://`` / ``rediss://`` / ``unix://``
for Redis, ``memory://`` for an in-process store.

>>> from model_store.signing import Signer
>>> reg = Registry.from_url("memory://", signer=Signer(b"0123456789abcdef-doc-key"))
>>> v1 = reg.publish("reco", b"w-1", format="safetensors", metadata={"metrics": {"rmse": 1}})
>>> v2 = reg.publish_object("reco", {"bias": 0.5}, parent=v1.number)
>>> (v1.number, v2.number, reg.latest("reco").number, reg.read_blob("reco", 1))
(1, 2, 2, b'w-1')
>>> reg.load_object("reco", "latest")[1]
{'bias': 0.5}
>>> _ = reg.promote("reco", 1); _ = reg.promote("reco", 2); reg.rollback("reco").to
1
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import msgspec

from model_store import codec
from model_store.aliases import AliasOperations, Ref
from model_store.backend import Backend
from model_store.blob import split as blob_split
from model_store.blob import stream as blob_stream
from model_store.errors import (
    AliasNotFoundError,
    FormatError,
    InvalidNameError,
    VersionNotFoundError,
)
from model_store.follow import follow as follow_log
from model_store.keys import check_alias, check_name
from model_store.records import ModelVersion, StoreEvent
from model_store.signing import SIGNED_FORMATS, Signer, check_signature, key_missing
from model_store.url import open_backend

__all__ = ["Registry"]

log = logging.getLogger(__name__)

_JSON_FIELDS = ("offsets", "metrics", "tags")


class Registry(AliasOperations):
    """Publish, read, alias and retire model versions.

    The alias methods come from :class:`~model_store.aliases.AliasOperations`.

    ``signer`` signs every publish and verifies on read (``river-pickle`` must be signed);
    ``require_signatures`` refuses unsigned blobs of any format, and blobs signed the old way
    (v1: metadata not covered). ``clock`` gives epoch
    seconds (pass a fake one in tests).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        signer: Signer | None = None,
        chunk_size: int = 4 * 2**20,
        require_signatures: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if chunk_size < 1:
            raise InvalidNameError(f"chunk_size must be positive, got {chunk_size}")
        self.backend = backend
        self.signer = signer
        self.chunk_size = chunk_size
        self.require_signatures = require_signatures
        self.clock = clock

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "lifelong",
        signer: Signer | Literal["env"] | None = "env",
        environ: Mapping[str, str] | None = None,
        chunk_size: int = 4 * 2**20,
        require_signatures: bool = False,
        **options: Any,
    ) -> Registry:
        """Open the store at ``url``; ``signer="env"`` reads the key from the environment.

        ``options`` go to ``redis.Redis.from_url`` (``client_name``, ``ssl_ca_certs`` ...).
        """
        backend = open_backend(url, prefix=prefix, **options)
        chosen = Signer.from_env(environ) if signer == "env" else signer
        return cls(backend, signer=chosen, chunk_size=chunk_size,
                   require_signatures=require_signatures)

    def close(self) -> None:
        """Release the backend's connections."""
        self.backend.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # publishing -------------------------------------------------------------------
    def publish(
        self,
        model: str,
        blob: bytes | bytearray | memoryview,
        *,
        format: str,
        metadata: Mapping[str, Any] | None = None,
        parent: int | None = None,
        number: int | None = None,
    ) -> ModelVersion:
        """Store ``blob`` as the model's next version and move ``latest`` to it.

        ``metadata`` may hold ``offsets``, ``metrics`` and ``tags`` maps; other JSON keys
        (``events_seen`` ...) are kept in ``extra``. ``number``: a number taken before with
        ``backend.reserve`` (a base written by a forked child, docs/publishing.md); ``latest``
        moves only to a number above the one it points at.
        """
        check_name("model", model)
        check_name("format", format)
        if parent is not None and (isinstance(parent, bool) or parent < 1):
            raise InvalidNameError(f"parent must be a version number, got {parent!r}")
        view = memoryview(blob).cast("B")
        digest = hashlib.sha256(view).hexdigest()
        if self.signer is None and (format in SIGNED_FORMATS or self.require_signatures):
            raise key_missing(f'publishing model "{model}" in format "{format}"')
        meta = dict(metadata or {})
        try:
            maps = {f: msgspec.json.decode(msgspec.json.encode(meta.pop(f, {})))
                    for f in _JSON_FIELDS}
            extra = msgspec.json.decode(msgspec.json.encode(meta))
        except (TypeError, msgspec.EncodeError) as exc:
            raise InvalidNameError(f'metadata of model "{model}" is not JSON: {exc}') from exc
        if number is None:
            number = self.backend.reserve(model)
        count = self.backend.put_chunks(model, number, blob_split(view, self.chunk_size))
        now = self.clock()
        version = ModelVersion(
            model=model, number=number, format=format, sha256=digest, size=len(view),
            created=now, announced=now, parent=parent, chunks=count,
            chunk_size=self.chunk_size, extra=extra, **maps,
        )
        if self.signer is not None:  # signs the metadata too (offsets, parent, extra...)
            version = msgspec.structs.replace(version,
                                              signature=self.signer.sign_version(version))
        fields = version.to_fields()
        moved = self.backend.commit(model, number, fields, now)
        log.info("published model %s version %d (%s, %d bytes, %d chunks, latest moved: %s)",
                 model, number, format, version.size, count, moved)
        return version

    def publish_object(
        self,
        model: str,
        obj: Any,
        *,
        metadata: Mapping[str, Any] | None = None,
        parent: int | None = None,
        number: int | None = None,
    ) -> ModelVersion:
        """Pickle and sign ``obj`` (a River model ...) and publish it as ``river-pickle``.

        A learner that offers ``serving()`` publishes what that returns (what predicts, not
        its trainer and scorers). The metadata records the ``format_version`` written.
        """
        serving = getattr(obj, "serving", None)
        if callable(serving):
            obj = serving()
        meta = {**(metadata or {}), "format_version": codec.PICKLE_VERSION}
        return self.publish(model, codec.dump(obj), format=codec.PICKLE_FORMAT,
                            metadata=meta, parent=parent, number=number)

    # reading ----------------------------------------------------------------------
    def get(self, model: str, version: Ref) -> ModelVersion:
        """The version numbered ``version``, or the one alias ``version`` points at."""
        number = self._resolve(model, version)
        fields = self.backend.read_meta(model, [number])[0]
        if fields is None:
            raise VersionNotFoundError(model, number)
        return ModelVersion.from_fields(model, number, fields)

    def versions(self, model: str) -> list[ModelVersion]:
        """Every stored version of ``model``, oldest first."""
        check_name("model", model)
        numbers = self.backend.numbers(model)
        rows = self.backend.read_meta(model, numbers)
        return [ModelVersion.from_fields(model, n, f)
                for n, f in zip(numbers, rows, strict=True) if f]

    def latest(self, model: str) -> ModelVersion | None:
        """The version the ``latest`` alias points at (the newest), or ``None``."""
        try:
            return self.get(model, "latest")
        except (AliasNotFoundError, VersionNotFoundError):
            return None

    def models(self) -> list[str]:
        """Names of every model that has published, sorted."""
        return self.backend.models()

    def iter_blob(self, model: str, version: Ref) -> Iterator[bytes]:
        """Stream the blob chunk by chunk, checking the signature first.

        The last step raises ``IntegrityError`` on a sha256 mismatch, so consume the whole
        iterator before trusting what it gave.
        """
        found = self.get(model, version)
        check_signature(found, self.signer, require=self.require_signatures,
                        legacy=not self.require_signatures)
        return blob_stream(self.backend, found)

    def read_blob(self, model: str, version: Ref) -> bytes:
        """The whole blob, verified against its sha256 and signature."""
        return b"".join(self.iter_blob(model, version))

    def load(self, model: str, version: Ref) -> tuple[ModelVersion, Any]:
        """Read, verify and decode a version through :mod:`model_store.codec`'s table.

        Pickles are unpickled only when signed; deep models (``safetensors``) come back as
        recommenders; a format without a codec comes back as bytes.
        """
        found = self.get(model, version)
        check_signature(found, self.signer, require=self.require_signatures,
                        legacy=not self.require_signatures)
        return found, self.decode(found, b"".join(blob_stream(self.backend, found)))

    def load_object(self, model: str, version: Ref) -> tuple[ModelVersion, Any]:
        """Load a ``river-pickle`` version; unpickles only verified, signed bytes.

        A ``river-delta`` version loads as its chain: the base, then every delta after it
        (:func:`model_store.delta.load_chain`).
        """
        found = self.get(model, version)
        if found.format == codec.DELTA_FORMAT:  # base + deltas, each verified and bound
            from model_store.delta import load_chain

            return load_chain(self, model, found)
        if found.format != codec.PICKLE_FORMAT:
            raise FormatError(f'model "{model}" version {found.number} has format '
                              f'"{found.format}", not "{codec.PICKLE_FORMAT}"')
        check_signature(found, self.signer, require=True, legacy=not self.require_signatures)
        return found, self.decode(found, b"".join(blob_stream(self.backend, found)))

    def decode(self, version: ModelVersion, data: bytes) -> Any:
        """Turn verified blob bytes into an object with the format's codec (bytes if none)."""
        return codec.decode(version, data, self.signer,
                            require_signatures=self.require_signatures)

    # retention --------------------------------------------------------------------
    def gc(self, model: str, keep_last: int = 10, *, grace_seconds: float = 60.0,
           dry_run: bool = False, max_age_seconds: float | None = None) -> list[int]:
        """Delete versions older than the last ``keep_last``; return the numbers deleted.

        With ``max_age_seconds`` versions created longer ago than that go too, even among
        the last ``keep_last`` (retention by age, docs/privacy.md), except the newest one.
        Never deletes a version an alias points at, the one each alias would roll back
        to, or one created or announced within the last ``grace_seconds``, nor a version
        (a base, a delta) that the chain of a version it keeps is made of. With
        ``dry_run`` nothing is deleted: the numbers that would be are returned.
        """
        check_name("model", model)
        if keep_last < 0 or grace_seconds < 0 or (max_age_seconds or 0) < 0:
            raise InvalidNameError("keep_last, grace_seconds and max_age_seconds must not be "
                                   "negative")
        numbers = self.backend.numbers(model)
        current = self.backend.aliases(model)
        protected = set(current.values())
        protected.update(t for a, n in current.items()
                         if (t := self._rollback_target(model, a, n)) is not None)
        cut = max(0, len(numbers) - keep_last)
        expired: list[int] = []
        if max_age_seconds and numbers[cut:-1]:
            oldest = self.clock() - max_age_seconds
            recent = numbers[cut:-1]  # the newest version always stays
            expired = [n for n, f in zip(recent, self.backend.read_meta(model, recent),
                                         strict=True)
                       if f is not None and float(f.get("created") or 0) < oldest]
        old = [n for n in numbers[:cut] + expired if n not in protected]
        before = self.clock() - grace_seconds
        old = self._outside_live_chains(model, numbers, old, before)
        if dry_run:
            rows = self.backend.read_meta(model, old)
            return [n for n, f in zip(old, rows, strict=True) if f is not None and
                    max(float(f.get("created") or 0), float(f.get("announced") or 0)) < before]
        deleted = [n for n in old if self.backend.delete(model, n, announced_before=before)]
        if deleted:
            log.info("model %s: retention deleted versions %s", model, deleted)
        return deleted

    def _outside_live_chains(self, model: str, numbers: list[int], old: list[int],
                             before: float) -> list[int]:
        """``old`` less every base and delta that a version gc keeps is built on."""
        rows = dict(zip(numbers, self.backend.read_meta(model, numbers), strict=True))
        if not any(f and f.get("format") == codec.DELTA_FORMAT for f in rows.values()):
            return old
        candidates = set(old)

        def recent(n: int) -> bool:
            f = rows.get(n) or {}
            return max(float(f.get("created") or 0), float(f.get("announced") or 0)) >= before

        needed: set[int] = set()
        for n in numbers:
            if n in candidates and not recent(n):
                continue
            fields = rows.get(n)
            while fields and fields.get("format") == codec.DELTA_FORMAT and fields.get("parent"):
                parent = int(fields["parent"])
                if parent in needed:
                    break
                needed.add(parent)
                fields = rows.get(parent)
        return [n for n in old if n not in needed]

    # notices ----------------------------------------------------------------------
    def follow(
        self,
        model: str,
        *,
        after: str | None = None,
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[tuple[str, StoreEvent]]:
        """Yield ``(log id, event)`` for each publish, alias move and alarm as it happens.

        From the end of the log (or strictly after log id ``after``; ``"0-0"`` replays the
        retained log) until ``timeout`` seconds pass or ``stop`` is set; see
        :func:`model_store.follow.follow`.
        """
        return follow_log(self.backend, model, after=after, timeout=timeout, stop=stop)

    def alarm(self, model: str, kind: str = "drift", *, detail: Mapping[str, Any] | None = None,
              actor: str = "") -> StoreEvent:
        """Announce an alarm about ``model`` (e.g. drift) on its log and channel; moves nothing.

        The notice has ``kind="alarm"``, ``alias=""``, ``version`` = the model's ``latest``
        (0 if none) and ``detail = {"alarm": kind, **detail}``; :meth:`follow` yields it and
        subscribers skip it. The fine-tune worker starts a round on a ``drift`` alarm.
        """
        check_name("model", model)
        check_name("alarm kind", kind)
        try:
            info = msgspec.json.decode(msgspec.json.encode({**(detail or {}), "alarm": kind}))
        except (TypeError, msgspec.EncodeError) as exc:
            raise InvalidNameError(f'alarm detail for model "{model}" is not JSON: {exc}') from exc
        event = StoreEvent("alarm", model, self.backend.get_alias(model, "latest") or 0, "",
                           self.clock(), None, actor, info)
        entry_id = self.backend.append_event(event)
        log.warning("model %s: %s alarm raised (%s), log id %s", model, kind, info, entry_id)
        return event

    # audit ------------------------------------------------------------------------
    def record_audit(self, model: str, kind: str, fields: Mapping[str, Any]) -> str:
        """Append a record (values as text) to the model's ``kind`` audit log; its id.

        Erasures are recorded here (``kind="erasures"``, see :mod:`consumers.erasure`):
        the log is kept whole, unlike the notice log.
        """
        check_name("model", model)
        check_name("audit kind", kind)
        return self.backend.append_audit(model, kind, {k: str(v) for k, v in fields.items()})

    def audit(self, model: str, kind: str) -> list[tuple[str, dict[str, str]]]:
        """Every record of the model's ``kind`` audit log, oldest first."""
        check_name("model", model)
        return self.backend.read_audit(model, kind)

    # internals --------------------------------------------------------------------
    def _resolve(self, model: str, version: Ref) -> int:
        check_name("model", model)
        if isinstance(version, str) and not version.isdigit():
            number = self.backend.get_alias(model, check_alias(version))
            if number is None:
                raise AliasNotFoundError(model, version)
            return number
        if isinstance(version, bool) or int(version) < 1:
            raise InvalidNameError(f"invalid version {version!r}: numbers start at 1")
        return int(version)
