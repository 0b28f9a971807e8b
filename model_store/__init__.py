"""Versioned models in Redis: registry, aliases, retention, signing and subscribers."""

from model_store.backend import Backend
from model_store.codec import PICKLE_FORMAT, SAFETENSORS_FORMAT
from model_store.errors import (
    AliasNotFoundError,
    ConflictError,
    FormatError,
    IntegrityError,
    InvalidNameError,
    ModelStoreError,
    SigningKeyError,
    UnsignedModelError,
    VersionNotFoundError,
)
from model_store.keys import Keys
from model_store.memory_backend import MemoryBackend
from model_store.metrics import SubscriberMetrics
from model_store.predictor import Predictor
from model_store.recommend import TopK, is_item_scorer
from model_store.records import AliasChange, ModelVersion, StoreEvent
from model_store.redis_backend import RedisBackend
from model_store.registry import Registry
from model_store.signing import Signer
from model_store.subscriber import Loaded, Subscriber

__all__ = [
    "PICKLE_FORMAT",
    "SAFETENSORS_FORMAT",
    "AliasChange",
    "AliasNotFoundError",
    "Backend",
    "ConflictError",
    "FormatError",
    "IntegrityError",
    "InvalidNameError",
    "Keys",
    "Loaded",
    "MemoryBackend",
    "ModelStoreError",
    "ModelVersion",
    "Predictor",
    "RedisBackend",
    "Registry",
    "Signer",
    "SigningKeyError",
    "StoreEvent",
    "Subscriber",
    "SubscriberMetrics",
    "TopK",
    "UnsignedModelError",
    "VersionNotFoundError",
    "is_item_scorer",
]
