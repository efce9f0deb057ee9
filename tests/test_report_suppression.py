"""The report's small-cell suppression, on cases worked out by hand."""

from __future__ import annotations

import pandas as pd

from pipelines.report.suppression import is_small, suppress_events, suppress_partition


def test_small_is_one_to_k_minus_one():
    counts = pd.Series([0, 1, 10, 11, None], dtype="Int64")
    assert is_small(counts, 11).tolist() == [False, True, True, False, False]


def test_one_small_cell_takes_the_next_smallest_with_it():
    # 40 + 3 + 25 + 12 = 80 is shown: hiding only the 3 would leave 80 - 40 - 25 - 12 = 3.
    counts = pd.Series([40, 3, 25, 12])
    assert suppress_partition(counts, 11).tolist() == [False, True, False, True]


def test_two_small_cells_need_no_complement():
    counts = pd.Series([40, 3, 25, 5])
    assert suppress_partition(counts, 11).tolist() == [False, True, False, True]
    counts = pd.Series([40, 3, 25, 5, 12])
    assert suppress_partition(counts, 11).tolist() == [False, True, False, True, False]


def test_zero_is_chosen_as_complement_only_when_nothing_else_is_left():
    assert suppress_partition(pd.Series([0, 4, 30]), 11).tolist() == [False, True, True]
    assert suppress_partition(pd.Series([0, 4]), 11).tolist() == [True, True]


def test_nothing_small_hides_nothing():
    assert not suppress_partition(pd.Series([11, 0, 50]), 11).any()


def test_groups_are_suppressed_separately():
    counts = pd.Series([5, 20, 30, 20, 30, 40])
    groups = pd.Series(["a", "a", "a", "b", "b", "b"])
    assert suppress_partition(counts, 11, groups).tolist() == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]


def test_events_rows():
    n_eligible = pd.Series([30, 30, 12, 5, 29, 40])
    n_events = pd.Series([6, 27, 12, 5, 18, 20])
    n_censored = pd.Series([0, 0, 0, 0, 1, 0])
    hide_eligible, hide_events = suppress_events(n_eligible, n_events, 11, n_censored)
    # row 0: 6 imaged is small; row 1: 3 not imaged comes back as 30 - 27; row 2: all 12
    # imaged, 0 not imaged is fine; row 3: 5 eligible hides the row; row 4: 1 censored
    # comes back from the stratum size, so n_eligible and the rate go; row 5: fine.
    assert hide_eligible.tolist() == [False, False, False, True, True, False]
    assert hide_events.tolist() == [True, True, False, True, True, False]


def test_rates_of_no_rows_format_to_no_rows():
    """A table with no pattern above zero (a small warehouse) still formats, to nothing."""
    from pipelines.report.sections import fmt_rate_ci

    empty = pd.Series([], dtype="float64")
    assert fmt_rate_ci(empty, empty, empty, pd.Series([], dtype=bool)).tolist() == []
    one = pd.Series([0.42])
    text = fmt_rate_ci(one, pd.Series([0.351]), pd.Series([0.492]), pd.Series([False]))
    assert text.tolist() == ["42.0% (35.1–49.2)"]
