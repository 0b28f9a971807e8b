"""Property: whatever publishes, alias moves, rollbacks and retention runs happen, version
numbers only grow, are never reused, and ``latest`` is the newest publish."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from model_store import MemoryBackend, ModelStoreError, Registry
from tests.unit.model_store.conformance import FakeClock

ops = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.sampled_from(["a", "b"]), st.binary(max_size=9)),
        st.tuples(st.just("alias"), st.sampled_from(["a", "b"]), st.sampled_from(["p", "c"]),
                  st.integers(0, 30)),
        st.tuples(st.just("rollback"), st.sampled_from(["a", "b"]), st.sampled_from(["p", "c"])),
        st.tuples(st.just("gc"), st.sampled_from(["a", "b"]), st.integers(0, 3)),
        st.tuples(st.just("wait"), st.floats(0, 100)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_version_numbers_strictly_increase(script: list[tuple]) -> None:
    clock = FakeClock()
    reg = Registry(MemoryBackend(), chunk_size=4, clock=clock)
    published: dict[str, list[int]] = {"a": [], "b": []}
    for op in script:
        kind = op[0]
        if kind == "publish":
            _, model, blob = op
            v = reg.publish(model, blob, format="raw")
            assert not published[model] or v.number > published[model][-1]
            published[model].append(v.number)
            assert reg.latest(model).number == v.number
            assert reg.read_blob(model, v.number) == blob
        elif kind == "alias":
            _, model, alias, n = op
            with contextlib.suppress(ModelStoreError):
                reg.set_alias(model, alias, n or 1)
        elif kind == "rollback":
            with contextlib.suppress(ModelStoreError):
                reg.rollback(op[1], op[2])
        elif kind == "gc":
            deleted = reg.gc(op[1], keep_last=op[2], grace_seconds=10)
            assert set(deleted) <= set(published[op[1]])
            assert set(reg.aliases(op[1]).values()).isdisjoint(deleted)
        else:
            clock.advance(op[1])
        for model, numbers in published.items():
            stored = [v.number for v in reg.versions(model)]
            assert stored == sorted(set(stored)) and set(stored) <= set(numbers)
            if numbers:
                assert stored[-1] == numbers[-1]  # the newest is never collected
    for numbers in published.values():
        assert numbers == list(range(1, len(numbers) + 1))
