"""A differencing attack on the default export of the sample run, written apart from the
audit (pipelines/disclosure/audit.py) so that it does not share the audit's mistakes.

The attacker holds the export's files (the report and the run's artifacts show counts of
the same release) and the published cohort definition. They write down the identities
any analyst knows: strata partition their total, a stratum's eligible plus censored is
its size in every window, a flag's stratum is the sum of the patterns that hold it,
the age_50_plus flag is the bands from 50 up, a tier's index presentations are the
Kaplan-Meier day-0 at-risk count and the tier mix's count, TP + FN is the same in every
row, care gaps add up to their total, an overuse measure's age groups to its `all`. Then
they substitute what is published and peel: an identity left with one unknown gives it;
an identity of unknowns with plus signs whose published remainder R is under k pins
each of them to 0..R.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from pipelines.cohorts.definition import load_definition
from pipelines.cohorts.export import export
from pipelines.disclosure.release import aggregate_rules, read_tables
from pipelines.disclosure.suppression import suppress
from pipelines.warehouse import connect

K = 11


def identities(tables: dict[str, pd.DataFrame]) -> list[tuple[dict, float]]:
    """(terms {cell: coefficient}, constant) with sum(terms) == constant; cells are
    ("cell", table, row, column) for a table's count, ("size", ...) for a quantity never
    published. A cell's value is tables[table].loc[row, column] (NULL: unknown)."""
    definition = load_definition()
    found: list[tuple[dict, float]] = []

    def eq(plus: list, minus: list) -> None:
        terms: dict = defaultdict(float)
        for cell in plus:
            terms[cell] += 1
        for cell in minus:
            terms[cell] -= 1
        found.append((dict(terms), 0.0))

    summary = tables["cohort_summary"]
    cell = {}
    for row in summary.itertuples():
        for column in ("n_eligible", "n_events", "n_censored", "n_died"):
            key = (row.stratum_type, row.stratum_value, row.window_days, row.outcome, column)
            cell[key] = ("cell", "cohort_summary", row.Index, column)
        size = ("size", row.stratum_type, row.stratum_value)
        eq([cell[key[:4] + ("n_eligible",)], cell[key[:4] + ("n_censored",)]], [size])
    kinds = defaultdict(set)
    for kind, value in zip(summary["stratum_type"], summary["stratum_value"], strict=True):
        kinds[kind].add(value)
    keys = set(zip(summary["window_days"], summary["outcome"], strict=True))
    partitions = [k for k in kinds if k not in ("all", "flag")]
    for kind in partitions:
        eq([("size", kind, v) for v in kinds[kind]], [("size", "all", "all")])
        for window, outcome in keys:
            for column in ("n_eligible", "n_events", "n_censored", "n_died"):
                eq(
                    [cell[(kind, v, window, outcome, column)] for v in kinds[kind]],
                    [cell[("all", "all", window, outcome, column)]],
                )
    patterns = kinds.get("pattern", set())
    if "other" not in patterns:  # with a merged pattern the identity is an inequality
        for flag in kinds.get("flag", set()):
            holding = [p for p in patterns if flag in p.split("+")]
            eq([("size", "pattern", p) for p in holding], [("size", "flag", flag)])
    bands = [b[0] for b in definition.age_bands if b[1] >= 50]
    if "age_50_plus" in kinds.get("flag", set()):
        eq([("size", "age_band", b) for b in bands if b in kinds["age_band"]],
           [("size", "flag", "age_50_plus")])  # fmt: skip

    km = tables["time_to_referral"]
    for row in km[km["day"] == 0].itertuples():
        kind, value = ("all", "all") if row.tier == "all" else ("index_tier", row.tier)
        eq([("cell", "time_to_referral", row.Index, "n_at_risk")], [("size", kind, value)])
    for _, day in km.groupby("day"):
        whole = day[day["tier"] == "all"].index[0]
        for column in ("n_at_risk", "n_events"):
            eq([("cell", "time_to_referral", r, column) for r in day.index if r != whole],
               [("cell", "time_to_referral", whole, column)])  # fmt: skip

    mix = tables["index_tier_mix"].set_index("category")
    row_of = {c: i for i, c in enumerate(tables["index_tier_mix"]["category"])}
    for category in mix.index:
        n = ("cell", "index_tier_mix", row_of[category], "n")
        if category == "all":
            eq([n], [("size", "all", "all")])
        elif category == "low":
            poor = ("cell", "index_tier_mix", row_of["low_poorly_documented"], "n")
            eq([n, poor], [("size", "index_tier", "low")])
        elif category != "low_poorly_documented":
            eq([n], [("size", "index_tier", category)])

    gaps = tables["care_gap_counts"]
    kinds_of_gap = [r for r in gaps.index if gaps.loc[r, "care_gap"] != "all"]
    every_gap = gaps.index[gaps["care_gap"] == "all"][0]
    eq([("cell", "care_gap_counts", r, "n") for r in kinds_of_gap],
       [("cell", "care_gap_counts", every_gap, "n")])  # fmt: skip

    performance = tables["rule_performance"]
    for row in performance.itertuples():
        c = {x: ("cell", "rule_performance", row.Index, x) for x in ("tp", "fp", "fn", "tn")}
        eq([c["tp"], c["fn"]], [("size", "target", row.target)])
        eq([c["fp"], c["tn"]], [("size", "no_target", row.target)])
    overuse = tables["imaging_overuse"]
    for row in overuse.itertuples():
        c = {x: ("cell", "imaging_overuse", row.Index, x)
             for x in ("n_eligible", "n_imaged", "n_not_imaged", "n_censored")}  # fmt: skip
        eq([c["n_imaged"], c["n_not_imaged"]], [c["n_eligible"]])
        size = ("size", "overuse", row.measure, row.stratum_type, row.stratum_value)
        eq([c["n_eligible"], c["n_censored"]], [size])
    for measure in set(overuse["measure"]):
        rows = overuse.index[(overuse["measure"] == measure)
                             & (overuse["stratum_type"] == "age_group")]  # fmt: skip
        whole = overuse.index[(overuse["measure"] == measure)
                              & (overuse["stratum_type"] == "all")][0]  # fmt: skip
        for column in ("n_eligible", "n_imaged", "n_not_imaged", "n_censored"):
            eq([("cell", "imaging_overuse", r, column) for r in rows],
               [("cell", "imaging_overuse", whole, column)])  # fmt: skip
    quality = tables["documentation_quality"]
    for row in quality.itertuples():
        eq([("cell", "documentation_quality", row.Index, "n_documented"),
            ("cell", "documentation_quality", row.Index, "n_missing")],
           [("cell", "documentation_quality", row.Index, "n_presentations")])  # fmt: skip
    return found


def attack(tables: dict[str, pd.DataFrame]) -> dict[tuple, tuple[float, float]]:
    """The suppressed cells the identities narrow to under K values: {cell: (low, high)}."""
    known: dict[tuple, float] = {}
    for name, frame in tables.items():
        for column in frame.columns:
            if column.startswith("n") or column in ("tp", "fp", "fn", "tn"):
                for row, value in frame[column].items():
                    if not pd.isna(value):
                        known[("cell", name, row, column)] = float(value)
    hidden = {
        ("cell", name, row, column)
        for name, frame in tables.items()
        for column in frame.columns
        if column.startswith("n") or column in ("tp", "fp", "fn", "tn")
        for row, value in frame[column].items()
        if pd.isna(value)
    }
    equations = identities(tables)
    narrowed: dict[tuple, tuple[float, float]] = {}
    changed = True
    while changed:
        changed = False
        for terms, constant in equations:
            rest = constant - sum(c * known[v] for v, c in terms.items() if v in known)
            unknown = {v: c for v, c in terms.items() if v not in known}
            if len(unknown) == 1:
                ((v, c),) = unknown.items()
                known[v] = rest / c
                changed = True
            elif unknown and all(c == 1 for c in unknown.values()) and 0 <= rest < K:
                for v in unknown:
                    narrowed.setdefault(v, (0.0, rest))
            elif unknown and all(c == -1 for c in unknown.values()) and 0 <= -rest < K:
                for v in unknown:
                    narrowed.setdefault(v, (0.0, -rest))
    recovered = {v: (known[v], known[v]) for v in hidden if v in known}
    return recovered | {v: r for v, r in narrowed.items() if v in hidden}


@pytest.fixture(scope="module")
def exported(sample_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("differencing") / "export"
    export(sample_run.warehouse, out)
    return out


def export_tables(directory: Path) -> dict[str, pd.DataFrame]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return {name: pd.read_parquet(directory / f"{name}.parquet") for name in manifest["tables"]}


@pytest.mark.slow
def test_the_default_export_gives_no_suppressed_cell_away(exported: Path):
    tables = export_tables(exported)
    hidden = sum(int(f["suppressed"].sum()) for f in tables.values())
    assert hidden > 100  # the sample has many small strata: the attack has work to do
    assert attack(tables) == {}
    manifest = json.loads((exported / "manifest.json").read_text())
    # data/sample's README.md is not input: the manifest says so, with the reason
    assert [e for e in manifest["input_not_read"] if e.startswith("README.md: ")]
    audit = manifest["audit"]
    assert audit["every_suppressed_range_at_least_min_cell"] is True
    assert audit["narrowest_suppressed_range"] >= K


@pytest.mark.slow
def test_the_attack_breaks_suppression_table_by_table(sample_run):
    """What the export wrote before the audit: each table suppressed on its own (small
    cells and the complements within the table). The same attack recovers cells."""
    definition = load_definition()
    con = connect(sample_run.warehouse, read_only=True)
    try:
        raw = read_tables(con, definition, K)
    finally:
        con.close()
    rules = aggregate_rules(definition)
    tables = {name: suppress(frame, rules[name], K) for name, frame in raw.items()}
    broken = attack(tables)
    assert len(broken) > 0
    # and what it recovers is true: the marts' value lies in the range it found
    for (_, name, row, column), (low, high) in broken.items():
        assert low - 1e-9 <= raw[name].loc[row, column] <= high + 1e-9


@pytest.mark.slow
def test_the_report_shows_the_release(sample_run, exported: Path):
    html = (sample_run.warehouse.parent / "report.html").read_text(encoding="utf-8")
    mix = export_tables(exported)["index_tier_mix"]
    total = int(mix.loc[mix["category"] == "all", "n"].iloc[0])
    assert f"{total:,}" in html
    assert "Minimum cell</dt>" in html or "Minimum cell" in html
    assert "11 (counts 1–10 suppressed" in html
