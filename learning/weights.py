r"""Torch recommenders as safetensors bytes: ``dump`` mirrors ``load``, no pickle anywhere.

The tensors are the module's ``state_dict`` (prefix ``module.``) and each id table's
last-seen times (``users.last_seen``, ``items.last_seen``). The safetensors ``metadata``
(string -> string) carries JSON: the recommender's ``config``, each id table's ids and
settings, and the counters. Loading builds the recommender from its config and copies the
tensors in, so a loaded model predicts and keeps training exactly like the one dumped.

>>> from learning.torch_models import DeepRecommender
>>> rec = DeepRecommender("two_tower", n_factors=4, hidden=8, out_dim=4, seed=3)
>>> _ = rec.users.lookup(["u"], now=1.0); _ = rec.items.lookup(["i"], now=1.0)
>>> blob = dump(rec)
>>> blob.startswith(b"\x80")  # not a pickle
False
>>> load(blob).predict_one("u", "i") == rec.predict_one("u", "i")
True
"""

from __future__ import annotations

import json
import struct
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from learning.errors import LearningError
from learning.idtable import IdTable
from learning.torch_models import DeepRecommender

__all__ = ["FORMAT", "WeightsError", "dump", "load", "metadata_of", "safetensors_metadata"]

FORMAT = "lifelong.deep/1"


class WeightsError(LearningError):
    """The bytes are not a recommender dumped by :func:`dump` (or are damaged)."""


def _table_meta(table: IdTable) -> str:
    state = table.snapshot()
    del state["last_seen"]
    return json.dumps(state)


def dump(recommender: DeepRecommender) -> bytes:
    """Serialise ``recommender`` (weights, id tables, config) to safetensors bytes."""
    tensors: dict[str, torch.Tensor] = {
        f"module.{k}": v.detach().to("cpu").contiguous()
        for k, v in recommender.module.state_dict().items()
    }
    for side, table in (("users", recommender.users), ("items", recommender.items)):
        tensors[f"{side}.last_seen"] = torch.from_numpy(table.snapshot()["last_seen"])
    metadata = {
        "format": FORMAT,
        "config": json.dumps(recommender.config()),
        "users": _table_meta(recommender.users),
        "items": _table_meta(recommender.items),
        "state": json.dumps({"draws": recommender.module.draws,
                             "samples_trained": recommender.samples_trained}),
    }
    return st_save(tensors, metadata=metadata)


def safetensors_metadata(blob: bytes) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes, read from the header only ({} if none)."""
    if len(blob) < 8:
        raise WeightsError(f"weights blob of {len(blob)} bytes is too short")
    (n,) = struct.unpack("<Q", blob[:8])
    try:
        header = json.loads(blob[8 : 8 + n])
    except (ValueError, UnicodeDecodeError) as exc:
        raise WeightsError(f"weights blob has no valid safetensors header: {exc}") from exc
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise WeightsError("weights blob has no valid safetensors header")
    return meta


def metadata_of(blob: bytes) -> dict[str, str]:
    """The metadata of a blob written by :func:`dump` (checks the format tag)."""
    meta = safetensors_metadata(blob)
    if meta.get("format") != FORMAT:
        raise WeightsError(f"weights blob is not in format {FORMAT}")
    return meta


def load(blob: bytes, device: torch.device | str = "cpu") -> DeepRecommender:
    """Rebuild the recommender that :func:`dump` wrote, with its module on ``device``."""
    meta = metadata_of(blob)
    try:
        tensors = st_load(blob)
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"weights blob could not be read: {exc}") from exc
    config: dict[str, Any] = json.loads(meta["config"])
    if config.get("clip") is not None:
        config["clip"] = tuple(config["clip"])
    rec = DeepRecommender(**config)
    for side in ("users", "items"):
        state = json.loads(meta[side])
        state["last_seen"] = tensors.pop(f"{side}.last_seen").numpy()
        setattr(rec, side, IdTable.restore(state))
    counters = json.loads(meta["state"])
    weights = {k.removeprefix("module."): v for k, v in tensors.items()}
    module = rec.module
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name not in weights:
                raise WeightsError(f'weights blob lacks tensor "module.{name}"')
            param.data = weights.pop(name).clone()
    if weights:
        raise WeightsError(f"weights blob has unexpected tensors: {sorted(weights)}")
    module.draws = int(counters["draws"])
    rec.samples_trained = int(counters["samples_trained"])
    return rec.to(device)


#: the model-store formats this module defines (see :mod:`model_store.codec`)
CODECS = {"safetensors": (dump, load)}
