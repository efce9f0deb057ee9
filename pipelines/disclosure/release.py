"""One release: every count the extracts, the report and the run's artifacts publish.

The marts are the analysts' (a trusted room); a release is what leaves it. It is built
once from the published marts, with one minimum cell k, and everything that shows
counts outside the warehouse reads it: `redflags export` writes its tables, the HTML
report and the Prefect artifacts show them. So a reader who holds all of them holds one
release, and the audit below covers exactly what they hold.

How a release is made:
1. The tables: the aggregate marts; red-flag patterns with fewer than k index
   presentations merged into one `other` pattern (most patterns are rare, and a row of
   the table per rare pattern would be almost all suppressed cells); the Kaplan-Meier
   rows at weekly days and the windows only (daily rows would publish how many index
   presentations fell on each day before the data end); the counts the report shows
   (index presentations by tier, care gaps by kind).
2. Primary and complementary suppression (`suppression.suppress`): counts 1..k-1, and a
   second cell of every group a total would give away.
3. The audit (`audit.py`): every relation between the published counts, within and
   across tables, as linear constraints; each suppressed cell's range given everything
   published must be at least k wide, and no count the release implies (eligible minus
   events, a stratum's size) may be pinned to 1..k-1. Where one is, another cell is
   suppressed (the smallest non-zero one it is tied to), until none is.
4. Rates, intervals and medians of a row with a suppressed count are blanked; a
   Kaplan-Meier curve's later points go with an earlier suppressed count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.cohorts.definition import CohortDefinition
from pipelines.disclosure.audit import LinearSystem, Terms, is_protected, minus, ranges, total
from pipelines.disclosure.suppression import SuppressionRules, suppress
from pipelines.errors import UserError
from pipelines.scoring import predicates as p
from pipelines.scoring.rules import RuleSet

OTHER_PATTERNS = "other"
# What the audit records for a count the relations alone make 0, or an implied one.
ZERO = math.inf
# Tables whose counts the report shows first: the audit hides them last, like totals.
HEADLINE_TABLES = ("index_tier_mix", "care_gap_counts")
# Columns whose value `all` marks a table's total row.
TOTAL_COLUMNS = ("stratum_type", "tier", "category", "care_gap")
# Kaplan-Meier rows a release keeps: every WEEK-th day, the windows and day 0.
WEEK = 7
_RATES = ("rate", "ci_low", "ci_high")
# The release's tables, in the order extracts and docs list them.
RELEASE_TABLES = (
    "cohort_summary",
    "time_to_referral",
    "imaging_overuse",
    "rule_performance",
    "documentation_quality",
    "index_tier_mix",
    "care_gap_counts",
)
# Rounds of extra suppression before the audit gives up and withholds every count.
MAX_ROUNDS = 100
# A release of fewer index presentations than this many times k withholds every count:
# its strata are almost all under k, and the few that are not give the rest away.
TOO_FEW = 5


def aggregate_rules(definition: CohortDefinition) -> dict[str, SuppressionRules]:
    """How the counts of each release table hang together within the table (the first,
    fast pass of complementary suppression; the audit checks every relation after)."""
    partitioning = tuple(t for t in definition.stratum_types if t not in ("all", "flag"))
    return {
        "cohort_summary": SuppressionRules(
            counts=("n_eligible", "n_events", "n_censored", "n_died"),
            derived=(*_RATES, "median_days_to_event"),
            row_groups=(("n_eligible", "n_censored"),),
            total_column="stratum_type",
            keys=("window_days", "outcome"),
            group_column="stratum_type",
            part_values=partitioning,
        ),
        "time_to_referral": SuppressionRules(
            counts=("n_at_risk", "n_events"),
            derived=("cumulative_incidence", "ci_low", "ci_high"),
            total_column="tier",
            keys=("day",),
            cascade_by=("tier",),
            cascade_order="day",
        ),
        "imaging_overuse": SuppressionRules(
            counts=("n_eligible", "n_imaged", "n_not_imaged", "n_censored"),
            derived=("share_not_imaged", "ci_low", "ci_high"),
            row_groups=(("n_imaged", "n_not_imaged"), ("n_eligible", "n_censored")),
            total_column="stratum_type",
            keys=("measure", "window_days"),
            group_column="stratum_type",
            part_values=("age_group",),
        ),
        "rule_performance": SuppressionRules(
            counts=("tp", "fp", "fn", "tn"),
            derived=tuple(
                f"{measure}{part}"
                for measure in ("sensitivity", "specificity", "ppv", "npv", "lr_positive")
                for part in ("", "_ci_low", "_ci_high")
            ),
            row_groups=(("tp", "fn"), ("fp", "tn")),
        ),
        "documentation_quality": SuppressionRules(
            counts=("n_presentations", "n_documented", "n_missing"),
            derived=("share_documented",),
            row_groups=(("n_documented", "n_missing"),),
            total_column="tier",
            keys=("field",),
        ),
        "index_tier_mix": SuppressionRules(counts=("n",), total_column="category", keys=()),
        "care_gap_counts": SuppressionRules(counts=("n",), total_column="care_gap", keys=()),
    }


@dataclass
class Release:
    """The published tables (hidden counts are NULL; `suppressed` marks their rows) and
    what the audit found."""

    min_cell: int
    tables: dict[str, pd.DataFrame]
    audit: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ reading the tables


def read_tables(con: Any, definition: CohortDefinition, min_cell: int) -> dict[str, pd.DataFrame]:
    """The release's tables from the published marts, before suppression."""
    tables = {
        name: con.execute(f"SELECT * FROM marts.{name}").df()
        for name in (
            "cohort_summary",
            "time_to_referral",
            "imaging_overuse",
            "rule_performance",
            "documentation_quality",
        )
    }
    tables["cohort_summary"] = merge_rare_patterns(tables["cohort_summary"], min_cell, definition.z)
    days = kaplan_meier_days(definition)
    km = tables["time_to_referral"]
    tables["time_to_referral"] = km[km["day"].isin(days)].reset_index(drop=True)
    low = definition.tiers[-2]  # the lowest tier of the population
    mix = con.execute(
        """SELECT CASE WHEN index_tier = ? AND coalesce(completeness < 0.5, FALSE)
                       THEN index_tier || '_poorly_documented' ELSE index_tier END AS category,
                  count(*) AS n
           FROM marts.index_presentations GROUP BY ALL""",
        [low],
    ).df()
    categories = [*definition.tiers[:-1], f"{low}_poorly_documented"]
    mix = pd.DataFrame({"category": categories}).merge(mix, how="left").fillna({"n": 0})
    tables["index_tier_mix"] = _with_total(mix, "category", ["n"])
    gaps = con.execute("SELECT care_gap, count(*) AS n FROM marts.care_gaps GROUP BY ALL").df()
    kinds = [g["name"] for g in definition.section("care_gaps")["definitions"]]
    gaps = pd.DataFrame({"care_gap": kinds}).merge(gaps, how="left").fillna({"n": 0})
    tables["care_gap_counts"] = _with_total(gaps, "care_gap", ["n"])
    for frame in tables.values():
        for column in frame.columns:
            if column.startswith("n_") or column in ("n", "tp", "fp", "fn", "tn"):
                frame[column] = frame[column].astype("Int64")
    return tables


def _with_total(frame: pd.DataFrame, key: str, counts: list[str]) -> pd.DataFrame:
    totals = pd.DataFrame({key: ["all"], **{c: [int(frame[c].sum())] for c in counts}})
    return pd.concat([totals, frame], ignore_index=True)


def kaplan_meier_days(definition: CohortDefinition) -> list[int]:
    max_day = int(definition.section("time_to_referral")["max_day"])
    days = {0, max_day, *range(0, max_day + 1, WEEK)}
    days |= {w for w in definition.windows if w <= max_day}
    return sorted(days)


def wilson(x: float, n: float, z: float) -> tuple[float, float]:
    if n <= 0:
        return (math.nan, math.nan)
    phat = x / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def merge_rare_patterns(summary: pd.DataFrame, min_cell: int, z: float) -> pd.DataFrame:
    """Pattern strata with fewer than `min_cell` index presentations merged into one row
    per window and outcome, `other`; its rate and interval recomputed, its median not
    known (NULL)."""
    size = summary["n_eligible"] + summary["n_censored"]
    rare = (summary["stratum_type"] == "pattern") & (size < min_cell)
    if not rare.any():
        return summary.reset_index(drop=True)
    merged = (
        summary[rare]
        .groupby(["window_days", "outcome"], sort=False, as_index=False)[
            ["n_eligible", "n_events", "n_censored", "n_died"]
        ]
        .sum()
        .assign(stratum_type="pattern", stratum_value=OTHER_PATTERNS)
    )
    merged["rate"] = (merged["n_events"] / merged["n_eligible"]).where(merged["n_eligible"] > 0)
    bounds = [
        wilson(x, n, z) for x, n in zip(merged["n_events"], merged["n_eligible"], strict=True)
    ]
    merged["ci_low"] = [b[0] for b in bounds]
    merged["ci_high"] = [b[1] for b in bounds]
    merged["median_days_to_event"] = math.nan
    kept = summary[~rare]
    return pd.concat([kept, merged[summary.columns]], ignore_index=True)


# ------------------------------------------------------------------ the relations


@dataclass
class Cells:
    """The release's count cells as variables of one linear system.

    Cells that publish one number several times (a stratum's eligible and censored in
    every outcome's row; a tier's presentations in every field's row) are one variable:
    a reader who sees any of them sees it. A variable is known when any of its cells is
    published; to hide it, all its cells are hidden.
    """

    system: LinearSystem
    hidden: dict[str, dict[str, pd.Series]]  # table -> count column -> hidden mask
    cells_of: dict[int, list[tuple[str, int, str]]] = field(default_factory=dict)

    columns: dict[tuple[str, str], tuple[list, list]] = field(default_factory=dict)
    # the variables of total rows (stratum `all`; hiding one spreads to every partition)
    # and of the headline tables: the cover hides them last
    totals: set[int] = field(default_factory=set)
    total_rows: dict[str, list[bool]] = field(default_factory=dict)

    def cell(self, table: str, frame: pd.DataFrame, row: int, column: str, shared=None) -> int:
        if (table, column) not in self.columns:
            values = [None if pd.isna(v) else float(v) for v in frame[column]]
            self.columns[(table, column)] = (values, self.hidden[table][column].tolist())
        values, hidden = self.columns[(table, column)]
        value = values[row]
        key = shared if shared is not None else (table, row, column)
        shown = not hidden[row] and value is not None
        variable = self.system.variable(key, None)
        if table not in self.total_rows:
            marks = [frame[c] == "all" for c in TOTAL_COLUMNS if c in frame.columns]
            self.total_rows[table] = (
                pd.concat(marks, axis=1).any(axis=1).tolist() if marks else [False] * len(frame)
            )
        if self.total_rows[table][row] or table in HEADLINE_TABLES:
            self.totals.add(variable)
        if shown:
            self.system.values[variable] = float(value)
        self.cells_of.setdefault(variable, []).append((table, row, column))
        return variable

    def quantity(self, *key: Any) -> int:
        """A count the release never publishes (a stratum's size, a rule's positives)."""
        return self.system.variable(("hidden", *key))


def _rows(frame: pd.DataFrame, **equal: Any) -> Iterator[int]:
    mask = pd.Series(True, index=frame.index)
    for column, value in equal.items():
        mask &= frame[column] == value
    return iter(frame.index[mask])


def relations(
    tables: dict[str, pd.DataFrame],
    hidden: dict[str, dict[str, pd.Series]],
    definition: CohortDefinition,
    rules: RuleSet,
) -> tuple[Cells, list[Terms]]:
    """Every relation between the release's counts, and the counts the release implies
    without publishing them."""
    cells = Cells(LinearSystem(), hidden)
    implied: list[Terms] = []
    summary = tables["cohort_summary"]
    size: dict[tuple[str, str], int] = {}

    def stratum_size(kind: str, value: str) -> int:
        if (kind, value) not in size:
            size[(kind, value)] = cells.quantity("stratum", kind, value)
            implied.append(total(size[(kind, value)]))
        return size[(kind, value)]

    # cohort_summary: a stratum's eligible + censored is its size in every window and
    # outcome; events never exceed the eligible (and eligible - events is a count)
    by_key: dict[tuple, dict[str, int]] = {}
    first_outcome = summary["outcome"].iloc[0] if len(summary) else None
    for row in summary.index:
        kind, value = summary.loc[row, "stratum_type"], summary.loc[row, "stratum_value"]
        window, outcome = summary.loc[row, "window_days"], summary.loc[row, "outcome"]
        e = cells.cell("cohort_summary", summary, row, "n_eligible", ("E", kind, value, window))
        v = cells.cell("cohort_summary", summary, row, "n_events")
        c = cells.cell("cohort_summary", summary, row, "n_censored", ("C", kind, value, window))
        d = cells.cell("cohort_summary", summary, row, "n_died", ("D", kind, value, window))
        if outcome == first_outcome:  # E, C and D are one variable for every outcome
            cells.system.equal(minus(total(e, c), total(stratum_size(kind, value))))
            cells.system.at_most(minus(total(d), total(c)))  # the dead are censored
            implied.append(minus(total(c), total(d)))
        cells.system.at_most(minus(total(v), total(e)))
        implied.append(minus(total(e), total(v)))
        by_key[(kind, value, window, outcome)] = {"e": e, "v": v, "c": c, "d": d}
    windows = sorted(set(summary["window_days"]))
    outcomes = list(dict.fromkeys(summary["outcome"]))
    values_of: dict[str, list[str]] = {}
    for kind, value in dict.fromkeys(
        zip(summary["stratum_type"], summary["stratum_value"], strict=True)
    ):
        values_of.setdefault(kind, []).append(value)
    partitions = [k for k in definition.stratum_types if k not in ("all", "flag")]

    def sum_equal(parts: list[int], whole: int) -> None:
        cells.system.equal(minus(total(*parts), total(whole)))

    for kind in partitions:
        if kind not in values_of:
            continue
        sum_equal([stratum_size(kind, v) for v in values_of[kind]], stratum_size("all", "all"))
        for window in windows:
            for outcome in outcomes:
                for count in ("e", "v", "c", "d") if outcome == outcomes[0] else ("v",):
                    sum_equal(
                        [by_key[(kind, v, window, outcome)][count] for v in values_of[kind]],
                        by_key[("all", "all", window, outcome)][count],
                    )
    _flag_relations(cells, by_key, values_of, stratum_size, windows, outcomes, definition, rules)
    _tier_relations(stratum_size, values_of, cells.system, definition, rules)

    # time_to_referral: day 0 at risk is the tier's index presentations; at risk never
    # grows; `all` is the sum of the tiers
    km = tables["time_to_referral"]
    for tier in dict.fromkeys(km["tier"]):
        rows = sorted(_rows(km, tier=tier), key=lambda r: km.loc[r, "day"])
        at_risk = [cells.cell("time_to_referral", km, r, "n_at_risk") for r in rows]
        events = [cells.cell("time_to_referral", km, r, "n_events") for r in rows]
        kind, value = ("all", "all") if tier == "all" else ("index_tier", tier)
        if km.loc[rows[0], "day"] == 0:
            sum_equal([at_risk[0]], stratum_size(kind, value))
        for i in range(len(rows) - 1):
            cells.system.at_most(minus(total(at_risk[i + 1], events[i]), total(at_risk[i])))
    for day in dict.fromkeys(km["day"]):
        parts = [r for r in _rows(km, day=day) if km.loc[r, "tier"] != "all"]
        (whole,) = _rows(km, day=day, tier="all")
        for column in ("n_at_risk", "n_events"):
            sum_equal(
                [cells.cell("time_to_referral", km, r, column) for r in parts],
                cells.cell("time_to_referral", km, whole, column),
            )

    _overuse_relations(cells, tables["imaging_overuse"], stratum_size, sum_equal, implied)
    _rule_relations(cells, tables["rule_performance"], stratum_size, definition, implied)
    _documentation_relations(cells, tables["documentation_quality"], stratum_size, sum_equal)

    mix = tables["index_tier_mix"]
    low = definition.tiers[-2]
    for row in mix.index:
        category = mix.loc[row, "category"]
        n = cells.cell("index_tier_mix", mix, row, "n")
        if category == "all":
            sum_equal([n], stratum_size("all", "all"))
        elif category == low:
            (poor,) = _rows(mix, category=f"{low}_poorly_documented")
            sum_equal(
                [n, cells.cell("index_tier_mix", mix, poor, "n")], stratum_size("index_tier", low)
            )
        elif not category.endswith("_poorly_documented"):
            sum_equal([n], stratum_size("index_tier", category))
    gaps = tables["care_gap_counts"]
    gap_rows = [r for r in gaps.index if gaps.loc[r, "care_gap"] != "all"]
    (gap_total,) = _rows(gaps, care_gap="all")
    sum_equal(
        [cells.cell("care_gap_counts", gaps, r, "n") for r in gap_rows],
        cells.cell("care_gap_counts", gaps, gap_total, "n"),
    )
    # A care gap is an episode; an episode has one index presentation and at most one gap.
    cells.system.at_most(
        minus(
            total(cells.cell("care_gap_counts", gaps, gap_total, "n")),
            total(stratum_size("all", "all")),
        )
    )

    return cells, implied


def targets(system: LinearSystem, implied: list[Terms]) -> list[tuple[Terms, bool]]:
    """What a reader must not pin: every suppressed cell (True) and every count the
    release implies without publishing it (False)."""
    found = [
        (total(i), True)
        for i, value in enumerate(system.values)
        if value is None and system.keys[i][0] != "hidden"
    ]
    return found + [(expression, False) for expression in implied]


def _flag_relations(cells, by_key, values_of, stratum_size, windows, outcomes, definition, rules):
    """A flag's stratum is the sum of the patterns that hold it (the merged `other`
    pattern holds some of each flag's presentations, at most all of it); flags that
    are a stratum's value or a band of ages equal (or bound) those strata."""
    system = cells.system
    patterns = [v for v in values_of.get("pattern", []) if v != OTHER_PATTERNS]
    for flag in definition.red_flags:
        if ("flag", flag) not in _pairs(values_of):
            continue
        holding = [pat for pat in patterns if flag in pat.split("+")]
        has_other = OTHER_PATTERNS in values_of.get("pattern", [])
        for window in windows:
            for outcome in outcomes:
                for count in ("e", "v", "c", "d") if outcome == outcomes[0] else ("v",):
                    terms = total(
                        *[by_key[("pattern", pat, window, outcome)][count] for pat in holding]
                    )
                    if has_other:
                        share = cells.quantity("other_share", flag, window, outcome, count)
                        terms = minus(terms, {share: -1.0})
                        merged = by_key[("pattern", OTHER_PATTERNS, window, outcome)][count]
                        system.at_most(minus(total(share), total(merged)))
                    system.equal(
                        minus(terms, total(by_key[("flag", flag, window, outcome)][count]))
                    )
    # flags defined by a stratum attribute
    bands = {b[0]: (b[1], b[2]) for b in definition.age_bands}
    for feature in rules.features:
        if feature.name not in definition.red_flags or ("flag", feature.name) not in _pairs(
            values_of
        ):
            continue
        flag_size = stratum_size("flag", feature.name)
        expr = feature.expr
        if (
            isinstance(expr, p.Compare)
            and isinstance(expr.left, p.Column)
            and isinstance(expr.right, p.Literal)
        ):
            column, value = expr.left.name, expr.right.value
            if expr.op == "=" and column in values_of and value in values_of[column]:
                system.equal(minus(total(flag_size), total(stratum_size(column, value))))
            if expr.op == ">=" and column == "age_years" and "age_band" in values_of:
                inside = [
                    b for b, (lo, _) in bands.items() if lo >= value and b in values_of["age_band"]
                ]
                touching = [
                    b for b, (lo, hi) in bands.items() if hi >= value and b in values_of["age_band"]
                ]
                system.at_most(
                    minus(total(*[stratum_size("age_band", b) for b in inside]), total(flag_size))
                )
                system.at_most(
                    minus(total(flag_size), total(*[stratum_size("age_band", b) for b in touching]))
                )
        for lookup in _lookups(expr):
            column = lookup.arg.name if isinstance(lookup.arg, p.Column) else None
            if column in values_of:
                true_values = [
                    v for v, flag in lookup.values.items() if flag and v in values_of[column]
                ]
                system.at_most(
                    minus(total(*[stratum_size(column, v) for v in true_values]), total(flag_size))
                )


def _pairs(values_of: dict[str, list[str]]) -> set[tuple[str, str]]:
    return {(k, v) for k, vs in values_of.items() for v in vs}


def _lookups(expr: p.Expr) -> list[p.Lookup]:
    found = [expr] if isinstance(expr, p.Lookup) else []
    for child in expr.children():
        found += _lookups(child)
    return found


def _tier_relations(stratum_size, values_of, system, definition, rules):
    """A flag that alone puts a presentation in a tier bounds that tier and those above
    it; the episode's highest tier is at least its index tier."""
    tiers = list(definition.tiers[:-1])
    present = _pairs(values_of)
    for position, (when, _) in enumerate(rules.tier.branches[1:]):  # [0] is the outside tier
        alone = when.args if isinstance(when, p.Any_) else [when]
        above = [
            stratum_size("index_tier", t)
            for t in tiers[: position + 1]
            if ("index_tier", t) in present
        ]
        for item in alone:
            if isinstance(item, p.IsTrue) and isinstance(item.arg, p.Column):
                flag = item.arg.name
            else:
                flag = item.name if isinstance(item, p.Column) else None
            if flag and ("flag", flag) in present and above:
                system.at_most(minus(total(stratum_size("flag", flag)), total(*above)))
    for position in range(1, len(tiers)):
        upper = tiers[:position]
        index = [stratum_size("index_tier", t) for t in upper if ("index_tier", t) in present]
        episode = [
            stratum_size("episode_max_tier", t) for t in upper if ("episode_max_tier", t) in present
        ]
        if index and episode:
            system.at_most(minus(total(*index), total(*episode)))


def _overuse_relations(cells, overuse, stratum_size, sum_equal, implied):
    """Per measure: imaged + not imaged are the eligible, eligible + censored the
    measure's population, which is some of the index presentations; the age groups add
    up to `all`."""
    system = cells.system
    columns = ("n_eligible", "n_imaged", "n_not_imaged", "n_censored")
    for measure in dict.fromkeys(overuse["measure"]):
        sizes: dict[tuple[str, str], int] = {}
        for row in _rows(overuse, measure=measure):
            kind, value = overuse.loc[row, "stratum_type"], overuse.loc[row, "stratum_value"]
            e, i, ni, c = (cells.cell("imaging_overuse", overuse, row, x) for x in columns)
            sizes[(kind, value)] = cells.quantity("overuse", measure, kind, value)
            implied.append(total(sizes[(kind, value)]))
            sum_equal([i, ni], e)
            sum_equal([e, c], sizes[(kind, value)])
        if ("all", "all") not in sizes:
            continue
        system.at_most(minus(total(sizes[("all", "all")]), total(stratum_size("all", "all"))))
        parts = [s for (k, _), s in sizes.items() if k == "age_group"]
        if not parts:
            continue
        sum_equal(parts, sizes[("all", "all")])
        rows = list(_rows(overuse, measure=measure, stratum_type="age_group"))
        (whole,) = _rows(overuse, measure=measure, stratum_type="all")
        for column in columns:
            sum_equal(
                [cells.cell("imaging_overuse", overuse, r, column) for r in rows],
                cells.cell("imaging_overuse", overuse, whole, column),
            )


def _rule_relations(cells, performance, stratum_size, definition, implied):
    """Per target, TP + FN and FP + TN are the same in every row (with and without the
    target); they are some of the index presentations (a prior diagnosis or too short a
    follow-up excludes the rest), and a flag's TP + FP some of its stratum, a tier
    threshold's some of the tiers at or above."""
    system = cells.system
    tiers = list(definition.tiers[:-1])
    for target in dict.fromkeys(performance["target"]):
        with_target = cells.quantity("target", target)
        without = cells.quantity("no_target", target)
        implied += [total(with_target), total(without)]
        system.at_most(minus(total(with_target, without), total(stratum_size("all", "all"))))
        for row in _rows(performance, target=target):
            tp, fp, fn, tn = (
                cells.cell("rule_performance", performance, row, x)
                for x in ("tp", "fp", "fn", "tn")
            )
            system.equal(minus(total(tp, fn), total(with_target)))
            system.equal(minus(total(fp, tn), total(without)))
            rule_type, rule = performance.loc[row, "rule_type"], performance.loc[row, "rule"]
            if rule_type == "flag":
                positives = total(stratum_size("flag", rule))
            else:
                positives = total(
                    *[stratum_size("index_tier", t) for t in tiers[: tiers.index(rule) + 1]]
                )
            system.at_most(minus(total(tp, fp), positives))


def _documentation_relations(cells, quality, stratum_size, sum_equal):
    """A tier's presentations are the same for every field; documented + missing are
    them; the tiers add up to `all`; a tier's index presentations are some of them."""
    system = cells.system
    for tier in dict.fromkeys(quality["tier"]):
        presentations = cells.quantity("presentations", tier)
        for row in _rows(quality, tier=tier):
            p_ = cells.cell("documentation_quality", quality, row, "n_presentations", ("P", tier))
            d = cells.cell("documentation_quality", quality, row, "n_documented")
            m = cells.cell("documentation_quality", quality, row, "n_missing")
            sum_equal([d, m], p_)
        sum_equal([p_], presentations)
        if tier != "all":
            system.at_most(minus(total(stratum_size("index_tier", tier)), total(presentations)))
    tiers = [t for t in dict.fromkeys(quality["tier"]) if t != "all"]
    if "all" in set(quality["tier"]):
        sum_equal(
            [cells.quantity("presentations", t) for t in tiers],
            cells.quantity("presentations", "all"),
        )


# ------------------------------------------------------------------ the release


def build_release(con: Any, definition: CohortDefinition, rules: RuleSet, min_cell: int) -> Release:
    """The release of the published marts under minimum cell `min_cell` (see above)."""
    raw = read_tables(con, definition, min_cell)
    table_rules = aggregate_rules(definition)
    hidden: dict[str, dict[str, pd.Series]] = {}
    primary = complementary = 0
    for name, frame in raw.items():
        first = suppress(frame, table_rules[name], min_cell)
        hidden[name] = {}
        for column in table_rules[name].counts:
            small = frame[column].between(1, min_cell - 1).fillna(False)
            gone = (first[column].isna() & frame[column].notna()).fillna(False)
            hidden[name][column] = gone.astype(bool).reset_index(drop=True)
            primary += int(small.sum())
            complementary += int((gone & ~small).sum())
    added = 0
    cache: dict = {}
    # Hiding a count only widens what a reader can not rule out, so a count found
    # protected stays protected: later rounds check only what was not, and new cells.
    protected: dict[tuple, float] = {}
    cells, implied = relations(raw, hidden, definition, rules)
    mix = raw["index_tier_mix"]
    withheld = int(mix.loc[mix["category"] == "all", "n"].iloc[0]) < TOO_FEW * min_cell
    rounds, checked = 0, []
    for rounds in range(1, 0 if withheld else MAX_ROUNDS + 1):  # noqa: B007 (reported below)
        checked = targets(cells.system, implied)
        keys = [_expression_key(cells.system, expression) for expression, _ in checked]
        todo = [i for i, key in enumerate(keys) if key not in protected]
        found, reduced = ranges(cells.system, [checked[i][0] for i in todo], cache, min_cell)
        violations = []
        for number, (i, bounds) in enumerate(zip(todo, found, strict=True)):
            expression, is_cell = checked[i]
            if is_protected(bounds, min_cell, suppressed=is_cell):
                known_zero = bounds.high <= 1e-9  # zero by the relations: names nobody
                protected[keys[i]] = bounds.width if is_cell and not known_zero else ZERO
            else:
                violations.append((expression, reduced.binding.get(number, ())))
        if not violations:
            break
        chosen = _cover(cells, reduced, violations)
        if not chosen or rounds == MAX_ROUNDS:
            withheld = True  # nothing left the cover can name, or no end in sight
            break
        for variable in chosen:
            for table, row, column in cells.cells_of[variable]:
                hidden[table][column].iloc[row] = True
            added += 1
    if withheld:  # every count hidden: a reader learns nothing
        for name, frame in raw.items():
            for column in table_rules[name].counts:
                hidden[name][column] = pd.Series(True, index=range(len(frame)))
    cells_checked = (
        []
        if withheld
        else [protected[key] for key, (_, is_cell) in zip(keys, checked, strict=True) if is_cell]
    )
    widths = [w for w in cells_checked if w != ZERO]
    tables = {name: _apply(frame, hidden[name], table_rules[name]) for name, frame in raw.items()}
    n_cells = sum(len(frame) * len(table_rules[n].counts) for n, frame in raw.items())
    audit = {
        "min_cell": min_cell,
        "count_cells": n_cells,
        "suppressed_primary": primary,
        "suppressed_complementary": complementary,
        "suppressed_by_audit": added,
        "audit_rounds": rounds,
        "suppressed_cells_checked": len(cells_checked),
        "suppressed_cells_zero_by_the_relations": len(cells_checked) - len(widths),
        "implied_counts_checked": len(checked) - len(cells_checked),
        "narrowest_suppressed_range": min(widths) if widths else None,
        "every_suppressed_range_at_least_min_cell": all(w >= min_cell for w in widths),
        "every_count_withheld": withheld,
        "method": "linear programming over every relation between the release's counts "
        "(docs/marts.md, Disclosure control)",
    }
    return Release(min_cell, tables, audit)


def _expression_key(system: LinearSystem, expression: Terms) -> tuple:
    return tuple(sorted((system.keys[v], c) for v, c in expression.items()))


def _cover(cells: Cells, reduced: Any, violations: list[tuple[Terms, tuple[int, ...]]]) -> set[int]:
    """One more published count to suppress per violation: among the published counts
    that pin it (`_Reduced.support`), the smallest non-zero one that is not a total
    (hiding a total spreads to every partition of it), with its partner (a stratum's
    eligible goes with its censored: their sum is known from other windows)."""
    system = cells.system
    chosen: set[int] = set()
    for expression, binding in violations:
        candidates = [v for v in reduced.support(expression, binding) if _publishable(system, v)]
        if not candidates:
            # pinned by published counts the duals do not name (zeros, mostly): every
            # published count of its group goes
            chosen |= {v for v in reduced.neighbours(expression) if _publishable(system, v)}
            continue
        if not candidates or chosen & set(candidates):
            continue
        pick = min(
            candidates,
            key=lambda v: (system.values[v] == 0, v in cells.totals, system.values[v], v),
        )
        chosen.add(pick)
        key = system.keys[pick]
        if key[0] in ("E", "C"):
            partner = ("C" if key[0] == "E" else "E", *key[1:])
            if partner in system.index and _publishable(system, system.index[partner]):
                chosen.add(system.index[partner])
    for variable in chosen:
        system.hide(variable)
    return chosen


def _publishable(system: LinearSystem, variable: int) -> bool:
    return system.is_known(variable) and system.keys[variable][0] != "hidden"


def _apply(
    frame: pd.DataFrame, hidden: dict[str, pd.Series], rules: SuppressionRules
) -> pd.DataFrame:
    """The table as released: hidden counts NULL, derived values of their rows NULL."""
    out = frame.copy()
    any_hidden = pd.Series(False, index=out.index)
    for column, mask in hidden.items():
        mask = mask.reindex(out.index, fill_value=False)
        out[column] = out[column].astype("Int64").mask(mask)
        any_hidden |= mask
    blank = any_hidden
    if rules.cascade_order is not None:
        order = out.sort_values([*rules.cascade_by, rules.cascade_order]).index
        running = blank[order].astype(int).groupby([out.loc[order, c] for c in rules.cascade_by])
        blank = running.cummax().reindex(out.index).astype(bool)
    for column in rules.derived:
        out[column] = out[column].astype("Float64").mask(blank)
    out["suppressed"] = any_hidden.to_numpy()
    return out


# ------------------------------------------------------------------ in the warehouse

SCHEMA = "release"
AUDIT = "audit"


def store_release(con: Any, run_id: str, release: Release) -> None:
    """Write the release into schema `release`, replacing the previous one (the caller
    holds the transaction that publishes the marts it was made from)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for name, frame in release.tables.items():
        con.register("release_frame", frame)
        con.execute(f"CREATE OR REPLACE TABLE {SCHEMA}.{name} AS SELECT * FROM release_frame")
        con.unregister("release_frame")
    con.execute(
        f"CREATE OR REPLACE TABLE {SCHEMA}.{AUDIT} AS SELECT ? AS run_id, ? AS min_cell, "
        "now()::TIMESTAMP AS created_at, ?::JSON AS audit",
        [run_id, release.min_cell, json.dumps(release.audit)],
    )


def read_release(con: Any) -> Release:
    """The stored release, or a message saying how to make one."""
    found = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [SCHEMA]
        ).fetchall()
    }
    if AUDIT not in found:
        raise UserError("the warehouse holds no release of its marts; `redflags run` makes one")
    run_id, min_cell, audit = con.execute(
        f"SELECT run_id, min_cell, audit FROM {SCHEMA}.{AUDIT}"
    ).fetchone()
    tables = {
        name: con.execute(f"SELECT * FROM {SCHEMA}.{name}").df()
        for name in RELEASE_TABLES
        if name in found
    }
    return Release(int(min_cell), tables, {"run_id": run_id, **json.loads(audit)})
