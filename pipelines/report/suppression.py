"""Small-cell suppression for the report, following CLINICAL.md "Disclosure control".

Counts from 1 to k-1 are hidden; where a hidden count could be recovered by
subtraction from a total that is shown, a second count is hidden too. The rules
act on raw counts, before any rate is worked out, and a rate built from a hidden
count is hidden with it.

This is the report's own small copy, for the few shapes the report shows. The
cohorts branch's general `pipelines.cohorts.suppression.suppress` (groups declared
as data) follows the same rules; once both are merged, the report can call it.
"""

from __future__ import annotations

import pandas as pd


def is_small(counts: pd.Series, k: int) -> pd.Series:
    """True where a count lies in 1..k-1 (zero is not a small cell: it names nobody)."""
    return counts.between(1, k - 1) & counts.notna()


def suppress_partition(counts: pd.Series, k: int, groups: pd.Series | None = None) -> pd.Series:
    """Which cells of a partition to hide when the partition's total is shown.

    Cells are the rows of `counts`; `groups` says which cells add up to one shown
    total (all of them when None). Primary suppression hides small cells; when a
    group has exactly one hidden cell, one more cell of that group is hidden, the
    smallest non-zero one (a zero only when nothing else is left), so the hidden one
    cannot be had by subtraction.
    """
    key = groups if groups is not None else pd.Series(0, index=counts.index)
    primary = is_small(counts, k)
    n_primary = primary.groupby(key).transform("sum")
    # Zeros rank after every non-zero count; small counts are out of the running.
    order = counts.where(counts > 0, float("inf")).where(~primary)
    rank = order.groupby(key).rank(method="first")
    secondary = (n_primary == 1) & (rank == 1)
    return (primary | secondary).fillna(False).astype(bool)


def suppress_events(
    n_eligible: pd.Series, n_events: pd.Series, k: int, n_censored: pd.Series | None = None
) -> tuple[pd.Series, pd.Series]:
    """(hide n_eligible, hide n_events and the rate) for rows of events among eligible.

    Events and non-events partition the eligible: a small number without the event
    is recovered as n_eligible - n_events, so it hides n_events too. Eligible and
    censored partition the stratum, whose size other rows show, so a small censored
    count hides n_eligible. A hidden n_eligible hides the rate (the rate and n_events
    would give it back), and a small n_eligible hides the whole row.
    """
    hide_eligible = is_small(n_eligible, k)
    if n_censored is not None:
        hide_eligible = hide_eligible | is_small(n_censored, k)
    hide_events = hide_eligible | is_small(n_events, k) | is_small(n_eligible - n_events, k)
    return hide_eligible.astype(bool), hide_events.astype(bool)
