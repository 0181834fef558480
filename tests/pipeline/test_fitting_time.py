"""The accounting of a sweep's fitting time (pipeline.folds.fitting_time), without processes."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.folds.fitting_time import COMPACT_AFTER, FittingTime, merged
from pipeline.folds.worker import FoldResult


def fold(started: float, seconds: float) -> FoldResult:
    return FoldResult(0, 0.9, seconds, np.empty(0), None, fit_started=started)


def test_overlapping_spans_count_once_and_gaps_not_at_all():
    fitting = FittingTime()
    for started, seconds in [(10.0, 4.0), (12.0, 4.0), (20.0, 1.0), (20.5, 0.2)]:
        fitting.add(fold(started, seconds))
    # [10, 16] and [20, 21]: the second fold overlaps the first, the fourth lies inside the third.
    assert fitting.wall_seconds() == pytest.approx(7.0)
    assert fitting.discarded_seconds == 0.0


def test_discarded_folds_count_as_fitting_and_as_discarded():
    fitting = FittingTime()
    fitting.add(fold(0.0, 2.0))
    fitting.add(fold(5.0, 0.5), discarded=True)
    assert fitting.discarded_seconds == pytest.approx(0.5)
    assert fitting.wall_seconds() == pytest.approx(2.5)


def test_merged_spans_are_disjoint_and_in_time_order():
    spans = [(5.0, 6.0), (0.0, 1.0), (0.5, 2.0), (6.0, 7.0), (3.0, 3.5)]
    assert merged(spans) == [(0.0, 2.0), (3.0, 3.5), (5.0, 7.0)]
    assert merged([]) == []


def test_a_long_sweep_keeps_few_spans_and_the_same_total():
    """Thousands of folds, mostly overlapping, returned out of order: the kept list is
    compacted and the total stays exact."""
    fitting, reference = FittingTime(), []
    rng = np.random.default_rng(0)
    clock = 0.0
    for _ in range(5 * COMPACT_AFTER):
        seconds = float(rng.uniform(0.1, 1.0))
        reference.append((clock, clock + seconds))
        clock += float(rng.uniform(0.0, 0.6))  # mostly overlapping, sometimes a gap
    for started, stop in rng.permutation(reference):
        fitting.add(fold(float(started), float(stop - started)))
    assert len(fitting.spans) < 2 * COMPACT_AFTER
    expected = sum(stop - start for start, stop in merged(reference))
    assert fitting.wall_seconds() == pytest.approx(expected)


def test_merging_two_loops_adds_their_discarded_seconds_and_unites_their_spans():
    first, second = FittingTime(), FittingTime()
    first.add(fold(0.0, 3.0), discarded=True)
    second.add(fold(2.0, 3.0))
    second.add(fold(9.0, 1.0), discarded=True)
    first.merge(second)
    assert first.discarded_seconds == pytest.approx(4.0)
    assert first.wall_seconds() == pytest.approx(6.0)  # [0, 5] and [9, 10]
