"""Small-cell and complementary suppression on hand-made tables."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.cohorts.definition import load_definition
from pipelines.disclosure.release import aggregate_rules
from pipelines.disclosure.suppression import (
    SuppressionRules,
    is_small,
    suppress,
)

SUMMARY = aggregate_rules(load_definition())["cohort_summary"]


def summary_rows(cells: list[tuple[str, str, int, int, int]]) -> pd.DataFrame:
    """(stratum_type, stratum_value, n_eligible, n_events, n_censored) for W=14, imaging_any;
    nobody died."""
    frame = pd.DataFrame(
        cells, columns=["stratum_type", "stratum_value", "n_eligible", "n_events", "n_censored"]
    )
    frame["window_days"] = 14
    frame["outcome"] = "imaging_any"
    frame["rate"] = frame["n_events"] / frame["n_eligible"]
    frame["ci_low"] = 0.0
    frame["ci_high"] = 1.0
    frame["median_days_to_event"] = 3.0
    frame["n_died"] = 0
    return frame


def visible(frame: pd.DataFrame, stratum_value: str, column: str):
    value = frame.loc[frame["stratum_value"] == stratum_value, column].iloc[0]
    return None if pd.isna(value) else int(value)


def test_primary_suppression_of_1_to_k_minus_1():
    frame = summary_rows(
        [
            ("all", "all", 100, 40, 0),
            ("flag", "fever", 10, 0, 0),
            ("flag", "night_pain", 11, 11, 0),
        ]
    )
    out = suppress(frame, SUMMARY, 11)
    assert visible(out, "fever", "n_eligible") is None  # 10 < 11
    assert visible(out, "fever", "n_events") == 0  # zero is not a small cell
    assert visible(out, "night_pain", "n_eligible") == 11  # k itself is shown
    assert visible(out, "all", "n_events") == 40
    assert out.loc[out["stratum_value"] == "fever", "rate"].isna().all()
    assert out["suppressed"].tolist() == [False, True, False]


def test_subtraction_from_the_all_row_is_blocked():
    # Naive suppression would hide only M's 5 events; but all (40) - F (35) = 5.
    frame = summary_rows(
        [
            ("all", "all", 100, 40, 0),
            ("sex", "F", 70, 35, 0),
            ("sex", "M", 30, 5, 0),
        ]
    )
    naive = frame.assign(n_events=frame["n_events"].mask(frame["n_events"].between(1, 10)))
    leaked = naive.loc[0, "n_events"] - naive.loc[1, "n_events"]
    assert leaked == 5  # what a reader of the naive table recovers

    out = suppress(frame, SUMMARY, 11)
    assert visible(out, "M", "n_events") is None
    assert visible(out, "F", "n_events") is None  # the complementary cell
    assert visible(out, "all", "n_events") == 40
    # other columns untouched: no small cells there
    assert visible(out, "F", "n_eligible") == 70 and visible(out, "M", "n_eligible") == 30
    assert out.loc[out["stratum_value"].isin(["F", "M"]), "rate"].isna().all()


def test_complement_is_the_smallest_non_zero_other_cell():
    frame = summary_rows(
        [
            ("all", "all", 200, 100, 0),
            ("sex", "F", 100, 60, 0),
            ("sex", "M", 80, 35, 0),
            ("sex", "X", 15, 0, 0),
            ("sex", "U", 5, 5, 0),
        ]
    )
    out = suppress(frame, SUMMARY, 11)
    # U (5) is primary; X's 0 events is no cover, so M (35) goes: 100 - 60 - 0 = M + U.
    assert [visible(out, v, "n_events") for v in ["all", "F", "M", "X", "U"]] == [
        100,
        60,
        None,
        0,
        None,
    ]
    # n_eligible: U's 5 is primary, X's 15 (the smallest non-zero) its complement
    assert visible(out, "U", "n_eligible") is None
    assert visible(out, "X", "n_eligible") is None
    assert visible(out, "M", "n_eligible") == 80
    assert visible(out, "all", "n_eligible") == 200


def test_eligible_plus_censored_is_protected_within_a_row():
    # The stratum size (20) is visible in another window, so 15 + 5 would give 5 away.
    frame = summary_rows([("all", "all", 15, 12, 5)])
    out = suppress(frame, SUMMARY, 11)
    assert visible(out, "all", "n_censored") is None
    assert visible(out, "all", "n_eligible") is None
    assert visible(out, "all", "n_events") == 12


def test_flags_are_not_treated_as_a_partition():
    # Flags overlap, so `all` minus flags recovers nothing; a small flag cell alone is enough.
    frame = summary_rows(
        [("all", "all", 100, 40, 0), ("flag", "fever", 50, 5, 0), ("flag", "dyspnea", 60, 30, 0)]
    )
    out = suppress(frame, SUMMARY, 11)
    assert visible(out, "fever", "n_events") is None
    assert visible(out, "dyspnea", "n_events") == 30


def test_suppression_cascades_until_no_group_has_one_hidden_cell():
    # Hiding M's n_eligible (complement of the sex partition) exposes nothing else,
    # but M's n_censored 3 forces M's n_eligible, which forces another sex cell.
    frame = summary_rows(
        [
            ("all", "all", 100, 50, 20),
            ("sex", "F", 60, 30, 17),
            ("sex", "M", 40, 20, 3),
        ]
    )
    out = suppress(frame, SUMMARY, 11)
    for value in ("F", "M"):
        for column in ("n_eligible", "n_censored"):
            assert visible(out, value, column) is None, (value, column)
    assert visible(out, "all", "n_eligible") == 100
    # no group is left with exactly one hidden member
    sex = out[out["stratum_type"] == "sex"]
    for column in ("n_eligible", "n_events", "n_censored"):
        assert sex[column].isna().sum() != 1


def test_time_curve_is_blanked_from_the_first_suppressed_count():
    rules = SuppressionRules(
        counts=("n_at_risk", "n_events"),
        derived=("cumulative_incidence",),
        total_column="tier",
        keys=("day",),
        cascade_by=("tier",),
        cascade_order="day",
    )
    frame = pd.DataFrame(
        {
            "tier": ["all"] * 4,
            "day": [0, 1, 2, 3],
            "n_at_risk": [500, 500, 480, 470],
            "n_events": [0, 20, 3, 12],
            "cumulative_incidence": [0.0, 0.04, 0.046, 0.07],
        }
    )
    out = suppress(frame, rules, 11)
    assert out["n_events"].tolist()[:2] == [0, 20]
    assert pd.isna(out["n_events"].iloc[2])
    # day 3's curve value with day 1's would give day 2's events away
    assert out["cumulative_incidence"].isna().tolist() == [False, False, True, True]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40)),
        min_size=1,
        max_size=5,
    )
)
def test_no_visible_small_cell_and_no_single_hidden_cell_in_a_sum(parts):
    """Whatever the counts: nothing in 1..k-1 shows, and no sum has exactly one unknown."""
    cells = [("sex", f"S{i}", e + c, min(v, e), c) for i, (e, v, c) in enumerate(parts)]
    total = tuple(sum(x[j] for x in cells) for j in (2, 3, 4))
    out = suppress(summary_rows([("all", "all", *total), *cells]), SUMMARY, 11)
    for column in ("n_eligible", "n_events", "n_censored"):
        shown = out[column].dropna()
        assert not shown.between(1, 10).any()
        # the all row and the sex rows form one sum per column
        assert out[column].isna().sum() != 1
    # n_eligible + n_censored per row
    assert (out["n_eligible"].isna() == out["n_censored"].isna()).all()


# ---------------------------------------------------------- the report's shapes


def test_small_is_one_to_k_minus_one():
    counts = pd.Series([0, 1, 10, 11, None], dtype="Int64")
    assert is_small(counts, 11).tolist() == [False, True, True, False, False]


def test_rates_of_no_rows_format_to_no_rows():
    """A table with no pattern above zero (a small warehouse) still formats, to nothing."""
    from pipelines.report.sections import fmt_rate_ci

    empty = pd.Series([], dtype="float64")
    assert fmt_rate_ci(empty, empty, empty, pd.Series([], dtype=bool)).tolist() == []
    one = pd.Series([0.42])
    text = fmt_rate_ci(one, pd.Series([0.351]), pd.Series([0.492]), pd.Series([False]))
    assert text.tolist() == ["42.0% (35.1–49.2)"]
