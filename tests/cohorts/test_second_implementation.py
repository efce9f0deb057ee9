"""cohort_summary against a second, independent implementation in plain Python.

Random inputs (numpy, fixed seed) for a few thousand patients; the reference below
walks the rows one by one as schemas/cohorts.yml reads, with no SQL and no shared
code beyond the cohort definition's numbers and the value-set CSV.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pipelines.cohorts.build import build_cohorts, publish_marts
from pipelines.cohorts.definition import load_definition
from pipelines.value_sets import load_value_sets
from tests.support.cohorts import presentation, write_inputs

D0 = date(2023, 1, 1)
TIERS = ["urgent", "high", "moderate", "low"]
SITES = ["lumbar", "thoracic", "cervical", "unspecified"]
SMOKING = ["never", "former", "current", None]


def generate(n_patients: int, seed: int) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    definition = load_definition()
    procedures = [e for e in load_value_sets() if e.value_set.startswith("referral_")]
    presentations: list[dict] = []
    referrals: list[dict] = []
    for p in range(n_patients):
        pid = f"P{p:05d}"
        start = int(rng.integers(0, 600))
        n = int(rng.integers(1, 6))
        offsets = np.sort(rng.choice([0, 0, 1, 30, 90, 179, 180, 181, 200, 400], size=n))
        age = int(rng.integers(12, 91))
        sex = str(rng.choice(["F", "M", "X", "U"], p=[0.5, 0.45, 0.03, 0.02]))
        for k, off in enumerate(np.cumsum(offsets) + start):
            flags = {
                f: [True, False, None][int(rng.choice(3, p=[0.15, 0.7, 0.15]))]
                for f in definition.red_flags
            }
            back_pain = bool(rng.random() < 0.9)
            presentations.append(
                presentation(
                    f"{pid}-{k}",
                    pid,
                    int(off),
                    age_years=age,
                    sex=sex,
                    smoking_status=SMOKING[int(rng.integers(0, 4))],
                    pain_site=SITES[int(rng.integers(0, 4))],
                    back_pain=back_pain,
                    tier=TIERS[int(rng.integers(0, 4))] if back_pain else "not_back_pain",
                    score=int(rng.integers(0, 12)),
                    **flags,
                )
            )
        for r in range(int(rng.integers(0, 4))):
            when = start + int(rng.integers(-20, 120))
            given = rng.random() < 0.5
            entry = procedures[int(rng.integers(0, len(procedures)))]
            referrals.append(
                {
                    "referral_id": f"{pid}-R{r}",
                    "patient_id": pid,
                    "referral_date": D0 + timedelta(days=when),
                    "referral_type": entry.value_set.removeprefix("referral_"),
                    "modality": str(rng.choice(["xray", "ct", "mri"])) if given else None,
                    "body_region": str(rng.choice(["spine", "chest"])) if given else None,
                    "code": None if given else entry.code,
                    "code_system": None if given else entry.code_system,
                    "urgency": None,
                }
            )
    for row in presentations:
        row["encounter_date"] = D0 + (row["encounter_date"] - date(2024, 1, 1))
    return presentations, referrals


def derived_attribute(prefix: str) -> dict[tuple[str, str], str]:
    return {
        (e.code, e.code_system): e.value_set.removeprefix(prefix)
        for e in load_value_sets()
        if e.value_set.startswith(prefix)
    }


def wilson(x: int, n: int, z: float) -> tuple[float, float]:
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def reference_summary(presentations: list[dict], referrals: list[dict]) -> dict:
    definition = load_definition()
    rank = {t: i for i, t in enumerate(definition.tiers)}
    data_end = max(
        [p["encounter_date"] for p in presentations] + [r["referral_date"] for r in referrals]
    )
    # index presentations and episodes
    by_patient: dict[str, list[dict]] = defaultdict(list)
    for p in presentations:
        if p["back_pain"] and p["encounter_date"] <= data_end:
            by_patient[p["patient_id"]].append(p)
    indexes: list[dict] = []
    for rows in by_patient.values():
        rows.sort(key=lambda r: (r["encounter_date"], r["encounter_id"]))
        previous = None
        current = None
        for row in rows:
            gap = None if previous is None else (row["encounter_date"] - previous).days
            if gap is None or gap > definition.washout_days:
                current = dict(row, episode_max_tier=row["tier"])
                indexes.append(current)
            elif (row["encounter_date"] - current["encounter_date"]).days <= 90 and (
                rank[row["tier"]] < rank[current["episode_max_tier"]]
            ):
                current["episode_max_tier"] = row["tier"]
            previous = row["encounter_date"]
    # outcome events
    modality_of = derived_attribute("modality_")
    region_of = derived_attribute("region_")
    events: dict[str, list[tuple[date, str]]] = defaultdict(list)
    for r in referrals:
        if r["referral_date"] > data_end:
            continue
        key = (r["code"], r["code_system"])
        modality = r["modality"] or modality_of.get(key)
        region = r["body_region"] or region_of.get(key)
        for o in definition.outcomes:
            if (
                r["referral_type"] == o.referral_type
                and (o.modality is None or o.modality == modality)
                and (o.body_region is None or o.body_region == region)
            ):
                events[r["patient_id"]].append((r["referral_date"], o.name))
    bands = definition.age_bands
    cells: dict[tuple, list] = defaultdict(list)
    for idx in indexes:
        followup = (data_end - idx["encounter_date"]).days
        band = next((b[0] for b in bands if b[1] <= idx["age_years"] <= b[2]), "under 18")
        true_flags = [f for f in definition.red_flags if idx[f] is True]
        strata = [
            ("all", "all"),
            ("index_tier", idx["tier"]),
            ("episode_max_tier", idx["episode_max_tier"]),
            ("age_band", band),
            ("sex", idx["sex"]),
            ("pain_site", idx["pain_site"]),
            ("smoking_status", idx["smoking_status"] or "unknown"),
            ("pattern", "+".join(true_flags) or "none"),
            *(("flag", f) for f in true_flags),
        ]
        for o in definition.outcome_names:
            days = [
                (d - idx["encounter_date"]).days
                for d, name in events[idx["patient_id"]]
                if name == o and d >= idx["encounter_date"]
            ]
            first = min(days) if days else None
            for w in definition.windows:
                for stratum in strata:
                    cells[(*stratum, w, o)].append((followup, first))
    summary = {}
    for key, members in cells.items():
        w = key[2]
        eligible = [first for followup, first in members if followup >= w]
        hits = [first for first in eligible if first is not None and first <= w]
        n = len(eligible)
        summary[key] = {
            "n_eligible": n,
            "n_events": len(hits),
            "n_censored": len(members) - n,
            "median": statistics.median(hits) if hits else None,
            "ci": wilson(len(hits), n, definition.z) if n else (None, None),
        }
    return summary


@pytest.mark.slow
def test_cohort_summary_agrees_with_a_plain_python_reference(tmp_path: Path):
    presentations, referrals = generate(3000, seed=20240501)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_inputs(con, presentations, referrals)
    build_cohorts(con)
    publish_marts(con, "reference-run")
    expected = reference_summary(presentations, referrals)
    rows = con.execute(
        """SELECT stratum_type, stratum_value, window_days, outcome, n_eligible, n_events,
                  n_censored, median_days_to_event, ci_low, ci_high
           FROM marts.cohort_summary"""
    ).fetchall()
    got = {r[:4]: r[4:] for r in rows}
    assert len(expected) > 2000  # the data really exercise many strata
    assert set(got) == set(expected)
    mismatches = []
    for key, ref in expected.items():
        n_eligible, n_events, n_censored, median, low, high = got[key]
        same = (n_eligible, n_events, n_censored) == (
            ref["n_eligible"],
            ref["n_events"],
            ref["n_censored"],
        )
        same &= median == ref["median"]
        if ref["n_eligible"]:
            same &= math.isclose(low, ref["ci"][0], abs_tol=1e-9)
            same &= math.isclose(high, ref["ci"][1], abs_tol=1e-9)
        else:
            same &= low is None and high is None
        if not same:
            mismatches.append((key, got[key], ref))
    assert not mismatches, mismatches[:5]
