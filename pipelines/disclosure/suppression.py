"""Small-cell and complementary suppression: the one owner, for the extracts and the report.

`suppress` works on whole aggregate tables whose counts hang together as declared in
`SuppressionRules` (the first pass of a release, pipelines/disclosure/release.py):

Primary: a count from 1 to k-1 is suppressed. Complementary: counts tied by a sum
(a total and the rows that partition it, or columns of a row whose sum is known
elsewhere) form a group; a group with exactly one suppressed member would give that
member away by subtraction, so the smallest other member (a non-zero one first) is
suppressed too, until no group has exactly one. Totals are treated as known even
when they are suppressed themselves, because another row may reveal them (n_eligible +
n_censored is the same stratum size in every window). Rates and intervals of a row
with a suppressed count are blanked; `suppressed` marks those rows. All of it works
on the raw counts, before any rate is computed from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SuppressionRules:
    """How one table's counts hang together."""

    counts: tuple[str, ...]
    # Columns computed from the counts, blanked on a row where any count is suppressed.
    derived: tuple[str, ...] = ()
    # Column sets of one row whose sum is known (published elsewhere or constant).
    row_groups: tuple[tuple[str, ...], ...] = ()
    # Rows whose `total_column` is `total_value` are totals of the rows that share `keys`;
    # with `group_column`, parts are grouped by it as well, and only `part_values` of it
    # partition the total (for stratum tables: every stratum type except `flag`).
    total_column: str | None = None
    total_value: str = "all"
    keys: tuple[str, ...] = ()
    group_column: str | None = None
    part_values: tuple[str, ...] | None = None
    # Derived values that accumulate along `cascade_order` (a survival curve): once a
    # count of a `cascade_by` group is suppressed, its later derived values go too.
    cascade_by: tuple[str, ...] = ()
    cascade_order: str | None = None


def _key(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One string per row joining `columns` (column by column, vectorised)."""
    key = pd.Series("", index=frame.index, dtype=object)
    for column in columns:
        key = key + "|" + frame[column].astype(str)
    return key


def _membership(frame: pd.DataFrame, rules: SuppressionRules) -> pd.DataFrame:
    """Long table (group, row, column): which cells are tied together by a sum."""
    pieces = []
    rows = pd.Series(np.arange(len(frame)), index=frame.index)
    for g, columns in enumerate(rules.row_groups):
        for column in columns:
            pieces.append(
                pd.DataFrame(
                    {
                        "group": "row" + str(g) + ":" + rows.astype(str),
                        "row": rows.values,
                        "column": column,
                    }
                )
            )
    if rules.total_column is not None:
        is_total = frame[rules.total_column] == rules.total_value
        parts = frame[~is_total]
        if rules.group_column is not None and rules.part_values is not None:
            parts = parts[parts[rules.group_column].isin(rules.part_values)]
        part_key = list(rules.keys) + ([rules.group_column] if rules.group_column else [])
        part_ids = rows[parts.index]
        totals = frame[is_total]
        total_ids = rows[totals.index]
        if rules.group_column:
            # every part type needs the total as a member of its own group
            types = pd.DataFrame({rules.group_column: parts[rules.group_column].unique()})
            totals_x = (
                totals.drop(columns=[rules.group_column])
                .assign(_row=total_ids.values)
                .merge(types, how="cross")
            )
        else:
            totals_x = totals.assign(_row=total_ids.values)
        for column in rules.counts:
            key_parts = _key(parts, part_key)
            key_totals = _key(totals_x, part_key)
            pieces.append(
                pd.DataFrame(
                    {
                        "group": f"part:{column}" + key_parts,
                        "row": part_ids.values,
                        "column": column,
                    }
                )
            )
            pieces.append(
                pd.DataFrame(
                    {
                        "group": f"part:{column}" + key_totals,
                        "row": totals_x["_row"].values,
                        "column": column,
                    }
                )
            )
    if not pieces:
        return pd.DataFrame(columns=["group", "row", "column"])
    return pd.concat(pieces, ignore_index=True)


def suppress(frame: pd.DataFrame, rules: SuppressionRules, min_cell: int) -> pd.DataFrame:
    """The table with counts 1..min_cell-1 and their complements blanked; adds `suppressed`."""
    frame = frame.reset_index(drop=True)
    values = {c: frame[c].astype("Int64") for c in rules.counts}
    hidden = {c: is_small(values[c], min_cell).fillna(False).to_numpy() for c in rules.counts}
    members = _membership(frame, rules)
    is_total = (
        (frame[rules.total_column] == rules.total_value).to_numpy()
        if rules.total_column is not None
        else np.zeros(len(frame), dtype=bool)
    )
    if not members.empty:
        value_of = np.stack([values[c].fillna(0).to_numpy() for c in rules.counts])
        column_index = members["column"].map({c: i for i, c in enumerate(rules.counts)}).to_numpy()
        row_index = members["row"].to_numpy()
        members = members.assign(value=value_of[column_index, row_index])
        while True:
            hidden_now = np.stack([hidden[c] for c in rules.counts])[column_index, row_index]
            members["hidden"] = hidden_now
            n_hidden = members.groupby("group")["hidden"].transform("sum")
            # a group gives a hidden member away when it is the only one hidden (how far
            # the others narrow it is for the audit, pipelines/disclosure/audit.py)
            exposed = members[(n_hidden == 1) & ~members["hidden"]]
            if exposed.empty:
                break
            # smallest non-zero member first, then a zero if nothing else is left; a
            # total last (hiding it spreads to every partition of it)
            pick = (
                exposed.assign(is_zero=exposed["value"] == 0, is_total=is_total[exposed["row"]])
                .sort_values(["group", "is_zero", "is_total", "value", "row"], kind="stable")
                .drop_duplicates("group")
            )
            for column, cells in pick.groupby("column"):
                hidden[column][cells["row"].to_numpy()] = True
    out = frame.copy()
    any_hidden = np.zeros(len(frame), dtype=bool)
    for column in rules.counts:
        any_hidden |= hidden[column]
        out[column] = values[column].mask(hidden[column])
    blank = pd.Series(any_hidden)
    if rules.cascade_order is not None:
        order = out.sort_values(list(rules.cascade_by) + [rules.cascade_order]).index
        cumulative = (
            blank[order].astype(int).groupby([out.loc[order, c] for c in rules.cascade_by]).cummax()
        )
        blank = cumulative.reindex(out.index).astype(bool)
    for column in rules.derived:
        out[column] = out[column].astype("Float64").mask(blank.to_numpy())
    out["suppressed"] = any_hidden
    return out


def is_small(counts: pd.Series, k: int) -> pd.Series:
    """True where a count lies in 1..k-1 (zero is not a small cell: it names nobody)."""
    return counts.between(1, k - 1) & counts.notna()
