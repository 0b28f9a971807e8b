"""Which ids a learner touched since its last version: what a delta (learning.deltas) carries.

A learner that publishes records the user and item ids it learns; a version clears them. A
learner nothing publishes for (a served replica, a worker without a publisher) records
nothing, and when recording starts again after it learned untracked, its next version must be
whole: no delta could name those rows.

>>> class Learner(RowTracking):
...     def __init__(self):
...         self.events_seen = 0
...         self._dirty_users, self._dirty_items, self._needs_base = set(), set(), False
...     def learn(self, user, item):
...         if self._dirty_users is not None:
...             self._dirty_users.add(user)
...             self._dirty_items.add(item)
...         self.events_seen += 1
>>> learner = Learner()
>>> learner.learn("u1", "i1")
>>> learner.dirty_rows()
({'u1'}, {'i1'})
>>> learner.clear_dirty(); learner.track_rows(False); learner.learn("u2", "i2")
>>> learner.track_rows(True); learner._needs_base
True
"""

from __future__ import annotations

__all__ = ["RowTracking"]


class RowTracking:
    """Mixin: ``dirty_rows`` / ``clear_dirty`` / ``track_rows`` over the learner's id sets.

    The class keeps ``_dirty_users`` and ``_dirty_items`` (``None``: not tracked),
    ``_needs_base`` and ``events_seen``, and adds each learned id to the sets.
    """

    _dirty_users: set[str] | None
    _dirty_items: set[str] | None
    _needs_base: bool
    events_seen: int

    def dirty_rows(self) -> tuple[set[str], set[str]]:
        """User and item ids learned since :meth:`clear_dirty` (or the start)."""
        return self._dirty_users or set(), self._dirty_items or set()

    def clear_dirty(self) -> None:
        """A version now holds every row: start recording learned ids afresh."""
        if self._dirty_users is not None:
            self._dirty_users, self._dirty_items = set(), set()
        self._needs_base = False

    def track_rows(self, on: bool) -> None:
        """Record learned ids (a learner that publishes) or not (nothing reads or clears them).

        Off: a served replica, a worker without a publisher. Turning it back on after events
        were learned untracked makes the next version whole: a delta would miss their rows.
        Turning it on when it is on keeps the ids recorded so far.
        """
        if on and self._dirty_users is None:
            untracked = self.__dict__.pop("_untracked_at", self.events_seen)
            self._needs_base = self._needs_base or untracked != self.events_seen
        elif not on and "_untracked_at" not in self.__dict__:  # rows dirty now would be lost
            self._untracked_at = self.events_seen if not self._dirty_users else -1
        if on != (self._dirty_users is not None):
            self._dirty_users, self._dirty_items = (set(), set()) if on else (None, None)
