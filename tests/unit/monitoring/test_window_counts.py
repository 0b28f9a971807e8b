"""A categorical window counted in C equals the label-by-label count, folding included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.detectors.chi2 import ChiSquaredDetector
from monitoring.detectors.psi import PSIDetector

labels = st.lists(st.integers(0, 12), min_size=1, max_size=80)


@settings(max_examples=150, deadline=None)
@given(windows=st.lists(labels, min_size=1, max_size=5), cap=st.integers(2, 10),
       as_iter=st.booleans())
def test_update_window_counts_as_one_label_at_a_time(windows: list[list[int]], cap: int,
                                                     as_iter: bool) -> None:
    for make in (lambda: PSIDetector(categorical=True, max_categories=cap),
                 lambda: ChiSquaredDetector(max_categories=cap)):
        fast, slow = make(), make()
        for xs in windows:
            fired = fast.update_window(iter(xs) if as_iter else xs)
            counts = slow._folded(xs)  # the label-by-label count (first `cap` labels kept)
            slow._n += len(xs)
            assert fired == slow._gate(slow._close(counts))
            assert fast._reference == slow._reference
            assert str(fast.state()) == str(slow.state()) and fast.n == slow.n  # NaN: by text
            assert len(fast._reference) <= cap + 1  # the rest folded into one "other"
