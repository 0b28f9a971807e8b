"""Where an alias rolls back to, worked out from its history of moves.

Replaying the history oldest first gives a stack of targets: a ``set`` (or a ``publish``
moving ``latest``) pushes, a ``rollback`` pops back to the version it moved to. Rolling
back moves the alias to the entry below the top, skipping versions that no longer exist.
So ``set 3, set 5, set 7, rollback, rollback`` ends at 3, not back and forth between two.

>>> from model_store.records import AliasChange
>>> moves = [AliasChange(alias="p", to=t, previous=None, actor="", ts=0.0, kind=k)
...          for t, k in [(3, "set"), (5, "set"), (7, "set"), (5, "rollback")]]
>>> target_stack(list(reversed(moves)))
[3, 5]
>>> rollback_target(list(reversed(moves)), current=5, exists=lambda n: True)
3
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from model_store.records import AliasChange

__all__ = ["rollback_target", "target_stack"]


def target_stack(history: Sequence[AliasChange]) -> list[int]:
    """The alias's targets still "under" the current one; ``history`` is newest first."""
    stack: list[int] = []
    for change in reversed(history):
        if change.kind == "rollback":
            while stack and stack[-1] != change.to:
                stack.pop()
            if not stack:
                stack.append(change.to)
        elif not stack or stack[-1] != change.to:
            stack.append(change.to)
    return stack


def rollback_target(
    history: Sequence[AliasChange], current: int | None, exists: Callable[[int], bool]
) -> int | None:
    """The version a rollback from ``current`` moves to, or ``None`` if there is none.

    >>> rollback_target([], current=None, exists=lambda n: True) is None
    True
    """
    stack = target_stack(history)
    if stack and stack[-1] == current:
        stack.pop()
    for candidate in reversed(stack):
        if candidate != current and exists(candidate):
            return candidate
    return None
