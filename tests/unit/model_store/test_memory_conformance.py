from __future__ import annotations

from typing import Any

import pytest

from model_store import MemoryBackend
from tests.unit.model_store.conformance import RegistryConformance
from tests.unit.model_store.subscriber_conformance import SubscriberConformance


class MemoryFixtures:
    @pytest.fixture()
    def backend(self) -> MemoryBackend:
        return MemoryBackend()

    def tamper_chunk(self, backend: Any, model: str, number: int, index: int,
                     data: bytes) -> None:
        backend._chunks[(model, number)][index] = data

    def tamper_meta(self, backend: Any, model: str, number: int, field: str,
                    value: str) -> None:
        backend._meta[model][number][field] = value


class TestMemoryRegistry(MemoryFixtures, RegistryConformance):
    pass


class TestMemorySubscriber(MemoryFixtures, SubscriberConformance):
    pass
