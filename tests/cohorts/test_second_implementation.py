"""The marts against a second, independent implementation in plain Python.

Random inputs (numpy, fixed seed) for a few thousand patients, with deaths, observation
periods, imaging of other regions, complicating and target diagnoses (some SNOMED); the
reference below walks the rows one by one as schemas/cohorts.yml reads, with no SQL and
no shared code beyond the cohort definition's numbers and the value-set CSV. It checks
cohort_summary, care_gaps, imaging_overuse and rule_performance.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import duckdb
import numpy as np
import pytest

from pipelines.cohorts.build import build_cohorts, publish_marts
from pipelines.cohorts.definition import CohortDefinition
from pipelines.value_sets import load_value_sets
from tests.support.cohorts import TIERS, definition, presentation, write_inputs

D0 = date(2023, 1, 1)
POPULATION_TIERS = list(TIERS[:-1])
SITES = ["lumbar", "thoracic", "cervical", "unspecified"]
SMOKING = ["never", "former", "current", None]
# dx_codes of presentations: back pain, complicating conditions, symptoms
PRESENTATION_CODES = ["M54.50", "M54.16", "M54.2", "S32.001A", "M81.0", "Z79.52", "R05", "Z51.5"]
# diagnoses: targets (ICD-10-CM and SNOMED), complicating conditions, others
DIAGNOSIS_CODES = [
    ("C34.90", "ICD10CM"),
    ("93880001", "SNOMED"),
    ("C79.51", "ICD10CM"),
    ("94222008", "SNOMED"),
    ("C90.00", "ICD10CM"),
    ("109989006", "SNOMED"),
    ("F11.20", "ICD10CM"),
    ("B20", "ICD10CM"),
    ("M45.6", "ICD10CM"),
    ("S22.000A", "ICD10CM"),
    ("I10", "ICD10CM"),
    ("38341003", "SNOMED"),  # hypertension: in no crosswalk entry
]


@dataclass
class Inputs:
    presentations: list[dict] = field(default_factory=list)
    referrals: list[dict] = field(default_factory=list)
    diagnoses: list[dict] = field(default_factory=list)
    patients: list[dict] = field(default_factory=list)


def on(day: int) -> date:
    return D0 + timedelta(days=day)


def generate(n_patients: int, seed: int) -> Inputs:
    rng = np.random.default_rng(seed)
    cohort = definition()
    exclusion_flags = cohort.raw["overuse"]["hedis_lbp"]["exclusion_flags"]
    procedures = [e for e in load_value_sets() if e.value_set.startswith("referral_")]
    data = Inputs()
    for p in range(n_patients):
        pid = f"P{p:05d}"
        start = int(rng.integers(0, 600))
        n = int(rng.integers(1, 6))
        offsets = np.sort(rng.choice([0, 0, 1, 3, 9, 20, 30, 90, 179, 180, 181, 400], size=n))
        age = int(rng.integers(12, 91))
        sex = str(rng.choice(["F", "M", "X", "U"], p=[0.5, 0.45, 0.03, 0.02]))
        for k, off in enumerate(np.cumsum(offsets) + start):
            flags = {
                f: [True, False, None][int(rng.choice(3, p=[0.15, 0.7, 0.15]))]
                for f in {*cohort.red_flags, *exclusion_flags}
            }
            back_pain = bool(rng.random() < 0.9)
            codes = rng.choice(PRESENTATION_CODES, size=int(rng.choice(4, p=[0.6, 0.2, 0.1, 0.1])))
            data.presentations.append(
                presentation(
                    f"{pid}-{k}",
                    pid,
                    0,
                    encounter_date=on(int(off)),
                    age_years=age,
                    sex=sex,
                    smoking_status=SMOKING[int(rng.integers(0, 4))],
                    pain_site=SITES[int(rng.integers(0, 4))],
                    back_pain=back_pain,
                    tier=str(rng.choice(POPULATION_TIERS)) if back_pain else TIERS[-1],
                    score=int(rng.integers(0, 12)),
                    dx_codes=" ; ".join(codes) if len(codes) else None,
                    **flags,
                )
            )
        for r in range(int(rng.integers(0, 5))):
            given = rng.random() < 0.6
            entry = procedures[int(rng.integers(0, len(procedures)))]
            data.referrals.append(
                {
                    "referral_id": f"{pid}-R{r}",
                    "patient_id": pid,
                    "referral_date": on(start + int(rng.integers(-20, 120))),
                    "referral_type": entry.value_set.removeprefix("referral_"),
                    "modality": str(rng.choice(["xray", "ct", "mri"])) if given else None,
                    "body_region": (
                        [None, "spine", "chest", "other"][int(rng.integers(0, 4))]
                        if given
                        else None
                    ),
                    "code": None if given else entry.code,
                    "code_system": None if given else entry.code_system,
                    "urgency": None,
                }
            )
        for _ in range(int(rng.choice(3, p=[0.7, 0.2, 0.1]))):
            code, system = DIAGNOSIS_CODES[int(rng.integers(0, len(DIAGNOSIS_CODES)))]
            data.diagnoses.append(
                {
                    "patient_id": pid,
                    "diagnosis_date": on(start + int(rng.integers(-400, 500))),
                    "code": code,
                    "code_system": system,
                }
            )
        if rng.random() < 0.85:  # the rest have no row in patients
            died = rng.random() < 0.15
            observed = rng.random() < 0.3
            data.patients.append(
                {
                    "patient_id": pid,
                    "death_date": on(start + int(rng.integers(-5, 400))) if died else None,
                    "observation_start_date": on(start - 1000),
                    "observation_end_date": (
                        on(start + int(rng.integers(-5, 500))) if observed else None
                    ),
                }
            )
    return data


# ----------------------------------------------------------------- code lists


def normalised(code: str) -> str:
    return "".join(c for c in code.upper() if c not in ". ")


def code_list(name: str) -> list[tuple[str, bool]]:
    """(normalised code, is a prefix) of the ICD-10-CM codes of a value set."""
    return [
        (normalised(e.code.rstrip("*")), e.code.endswith("*"))
        for e in load_value_sets()
        if e.value_set == name and e.code_system == "ICD10CM"
    ]


def in_list(code: str, entries: list[tuple[str, bool]]) -> bool:
    return any(code.startswith(c) if prefix else code == c for c, prefix in entries)


def as_icd10cm(code: str, system: str) -> str | None:
    """A diagnosis code as ICD-10-CM: itself, or through the to_icd10cm: crosswalk."""
    if system == "ICD10CM":
        return normalised(code)
    for e in load_value_sets():
        if (
            e.value_set.startswith("to_icd10cm:")
            and e.code_system == system
            and normalised(e.code) == normalised(code)
        ):
            return normalised(e.value_set.removeprefix("to_icd10cm:"))
    return None


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


# ----------------------------------------------------------------- the reference


class Reference:
    """Index presentations, episodes, follow-up and events, walked row by row."""

    def __init__(self, data: Inputs, cohort: CohortDefinition | None = None):
        self.cohort = cohort or definition()
        self.data = data
        self.rank = {t: i for i, t in enumerate(self.cohort.tiers)}
        self.data_end = max(
            [p["encounter_date"] for p in data.presentations]
            + [r["referral_date"] for r in data.referrals]
        )
        self.patient = {row["patient_id"]: row for row in data.patients}
        self._episodes()
        self._events()

    def _episodes(self) -> None:
        by_patient: dict[str, list[dict]] = defaultdict(list)
        for p in self.data.presentations:
            if p["back_pain"] and p["encounter_date"] <= self.data_end:
                by_patient[p["patient_id"]].append(p)
        self.indexes: list[dict] = []
        for rows in by_patient.values():
            rows.sort(key=lambda r: (r["encounter_date"], r["encounter_id"]))
            previous = None
            current: dict = {}
            for row in rows:
                gap = None if previous is None else (row["encounter_date"] - previous).days
                if gap is None or gap > self.cohort.washout_days:
                    current = dict(row, episode_max_tier=row["tier"], members=[row])
                    self.indexes.append(current)
                else:
                    current["members"].append(row)
                    if (row["encounter_date"] - current["encounter_date"]).days <= 90 and (
                        self.rank[row["tier"]] < self.rank[current["episode_max_tier"]]
                    ):
                        current["episode_max_tier"] = row["tier"]
                previous = row["encounter_date"]
        for idx in self.indexes:
            person = self.patient.get(idx["patient_id"], {})
            ends = [
                (self.data_end, "data_end"),
                (person.get("observation_end_date"), "observation_end"),
                (person.get("death_date"), "death"),
            ]
            end = min(d for d, _ in ends if d is not None)
            idx["followup"] = max(0, (end - idx["encounter_date"]).days)
            idx["died"] = person.get("death_date") == end

    def _events(self) -> None:
        modality_of = derived_attribute("modality_")
        region_of = derived_attribute("region_")
        self.events: dict[str, list[tuple[date, str]]] = defaultdict(list)
        for r in self.data.referrals:
            if r["referral_date"] > self.data_end:
                continue
            key = (r["code"], r["code_system"])
            modality = r["modality"] or modality_of.get(key)
            region = r["body_region"] or region_of.get(key)
            if r["referral_type"] == "imaging" and region == "other":
                continue  # imaging of a known other region is no outcome
            for o in self.cohort.outcomes:
                if (
                    r["referral_type"] == o.referral_type
                    and (o.modality is None or o.modality == modality)
                    and (o.body_region is None or o.body_region == region)
                ):
                    self.events[r["patient_id"]].append((r["referral_date"], o.name))

    def first(self, patient_id: str, since: date, outcomes: list[str]) -> int | None:
        days = [
            (d - since).days
            for d, name in self.events[patient_id]
            if name in outcomes and d >= since
        ]
        return min(days) if days else None

    # ------------------------------------------------------------- cohort_summary

    def summary(self) -> dict:
        cohort = self.cohort
        bands = cohort.age_bands
        cells: dict[tuple, list] = defaultdict(list)
        for idx in self.indexes:
            band = next((b[0] for b in bands if b[1] <= idx["age_years"] <= b[2]), "under 18")
            true_flags = [f for f in cohort.red_flags if idx[f] is True]
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
            for o in cohort.outcome_names:
                first = self.first(idx["patient_id"], idx["encounter_date"], [o])
                for w in cohort.windows:
                    for stratum in strata:
                        cells[(*stratum, w, o)].append((idx["followup"], idx["died"], first))
        summary = {}
        for key, members in cells.items():
            w = key[2]
            eligible = [first for followup, _, first in members if followup >= w]
            hits = [first for first in eligible if first is not None and first <= w]
            n = len(eligible)
            summary[key] = {
                "n_eligible": n,
                "n_events": len(hits),
                "n_censored": len(members) - n,
                "n_died": sum(1 for followup, died, _ in members if followup < w and died),
                "median": statistics.median(hits) if hits else None,
                "ci": wilson(len(hits), n, cohort.z) if n else (None, None),
            }
        return summary

    # ------------------------------------------------------------- care_gaps

    def care_gaps(self) -> set[tuple]:
        gaps = {g["tier"]: g for g in self.cohort.raw["care_gaps"]["definitions"]}
        found = set()
        for idx in self.indexes:
            trigger = next((m for m in idx["members"] if m["tier"] in gaps), None)
            if trigger is None:
                continue
            gap = gaps[trigger["tier"]]
            to_trigger = (trigger["encounter_date"] - idx["encounter_date"]).days
            if to_trigger + gap["window_days"] > idx["followup"]:
                continue  # the window has not passed within follow-up
            days = self.first(idx["patient_id"], trigger["encounter_date"], gap["outcomes"])
            if days is None or days > gap["window_days"]:
                found.add(
                    (
                        gap["name"],
                        idx["encounter_id"],
                        trigger["encounter_id"],
                        to_trigger,
                        days,
                        (self.data_end - trigger["encounter_date"]).days,
                    )
                )
        return found

    # ------------------------------------------------------------- imaging_overuse

    def overuse(self) -> dict[tuple[str, str], tuple[int, int, int]]:
        overuse = self.cohort.raw["overuse"]
        hedis = overuse["hedis_lbp"]
        window = overuse["window_days"]
        lbp = code_list(hedis["low_back_pain_value_set"])
        exclusion_lists = [
            (code_list(x["value_set"]), x["lookback_days"]) for x in hedis["exclusion_value_sets"]
        ]
        # every dated code and flag of each patient, from presentations and diagnoses
        coded: dict[str, list[tuple[date, str]]] = defaultdict(list)
        flagged: dict[str, list[date]] = defaultdict(list)
        for p in self.data.presentations:
            if p["encounter_date"] > self.data_end:
                continue
            for code in (p["dx_codes"] or "").split(";"):
                if code.strip():
                    coded[p["patient_id"]].append((p["encounter_date"], normalised(code)))
            if any(p[f] is True for f in hedis["exclusion_flags"]):
                flagged[p["patient_id"]].append(p["encounter_date"])
        for d in self.data.diagnoses:
            icd = as_icd10cm(d["code"], d["code_system"])
            if icd is not None and d["diagnosis_date"] <= self.data_end:
                coded[d["patient_id"]].append((d["diagnosis_date"], icd))

        def excluded(idx: dict) -> bool:
            index_date = idx["encounter_date"]
            for when in flagged[idx["patient_id"]]:
                if 0 <= (index_date - when).days <= hedis["exclusion_flag_days"]:
                    return True
            for when, code in coded[idx["patient_id"]]:
                for entries, lookback in exclusion_lists:
                    if 0 <= (index_date - when).days <= lookback and in_list(code, entries):
                        return True
            return False

        low_rank = self.rank[overuse["low_value_imaging"]["tier"]]
        counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for idx in self.indexes:
            if not overuse["min_age"] <= idx["age_years"] <= overuse["max_age"]:
                continue
            spine = self.first(idx["patient_id"], idx["encounter_date"], overuse["outcomes"])
            codes = [normalised(c) for c in (idx["dx_codes"] or "").split(";") if c.strip()]
            measures = []
            if (
                idx["pain_site"] in hedis["pain_sites"] or any(in_list(c, lbp) for c in codes)
            ) and not excluded(idx):
                measures.append("hedis_lbp")
            counted = [
                m
                for m in idx["members"]
                if 0 <= (m["encounter_date"] - idx["encounter_date"]).days <= window
                and (spine is None or (m["encounter_date"] - idx["encounter_date"]).days <= spine)
            ]
            if min(self.rank[m["tier"]] for m in counted) == low_rank:
                measures.append("low_value_imaging")
            group = next(
                g["label"]
                for g in overuse["age_groups"]
                if g["min"] <= idx["age_years"] <= g["max"]
            )
            for measure in measures:
                for stratum in ("all", group):
                    cell = counts[(measure, stratum)]
                    if idx["followup"] >= window:
                        cell[0] += 1
                        cell[1] += spine is not None and spine <= window
                    else:
                        cell[2] += 1
        return {key: tuple(value) for key, value in counts.items()}

    # ------------------------------------------------------------- rule_performance

    def rule_performance(self) -> dict[tuple[str, str, str], tuple[int, int, int, int]]:
        performance = self.cohort.raw["rule_performance"]
        targets = {
            t["name"]: [e for vs in t["value_sets"] for e in code_list(vs)]
            for t in performance["targets"]
        }
        dated: dict[tuple[str, str], list[date]] = defaultdict(list)
        for d in self.data.diagnoses:
            icd = as_icd10cm(d["code"], d["code_system"])
            if icd is None or d["diagnosis_date"] > self.data_end:
                continue
            for target, entries in targets.items():
                if in_list(icd, entries):
                    dated[(target, d["patient_id"])].append(d["diagnosis_date"])
        thresholds = list(self.cohort.tiers[:-1])
        counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for target in targets:
            for idx in self.indexes:
                dates = dated[(target, idx["patient_id"])]
                if any(d < idx["encounter_date"] for d in dates):
                    continue  # diagnosed before the index: excluded for this target
                days = [(d - idx["encounter_date"]).days for d in dates]
                has_target = bool(days) and min(days) <= min(
                    performance["within_days"], idx["followup"]
                )
                if not has_target and idx["followup"] < performance["followup_days"]:
                    continue  # too short a follow-up to call it a negative
                rules = [
                    ("tier_at_or_above", t, self.rank[idx["tier"]] <= self.rank[t])
                    for t in thresholds
                ] + [("flag", f, idx[f] is True) for f in self.cohort.red_flags]
                for rule_type, rule, positive in rules:
                    cell = counts[(target, rule_type, rule)]
                    cell[(0 if has_target else 1) if positive else (2 if has_target else 3)] += 1
        return {key: tuple(value) for key, value in counts.items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[duckdb.DuckDBPyConnection, Reference]:
    data = generate(3000, seed=20240501)
    path = tmp_path_factory.mktemp("reference") / "w.duckdb"
    con = duckdb.connect(str(path))
    write_inputs(con, data.presentations, data.referrals, data.diagnoses, data.patients)
    build_cohorts(con, definition=definition())
    publish_marts(con, "reference-run", definition=definition())
    return con, Reference(data)


@pytest.mark.slow
def test_cohort_summary_agrees_with_a_plain_python_reference(built):
    con, reference = built
    expected = reference.summary()
    rows = con.execute(
        """SELECT stratum_type, stratum_value, window_days, outcome, n_eligible, n_events,
                  n_censored, n_died, median_days_to_event, ci_low, ci_high
           FROM marts.cohort_summary"""
    ).fetchall()
    got = {r[:4]: r[4:] for r in rows}
    assert len(expected) > 2000  # the data really exercise many strata
    assert expected[("all", "all", 90, "imaging_any")]["n_died"] > 50  # and deaths
    assert set(got) == set(expected)
    mismatches = []
    for key, ref in expected.items():
        n_eligible, n_events, n_censored, n_died, median, low, high = got[key]
        same = (n_eligible, n_events, n_censored, n_died) == (
            ref["n_eligible"],
            ref["n_events"],
            ref["n_censored"],
            ref["n_died"],
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


@pytest.mark.slow
def test_care_gaps_agree_with_a_plain_python_reference(built):
    con, reference = built
    got = set(
        con.execute(
            """SELECT care_gap, encounter_id, trigger_encounter_id, days_index_to_trigger,
                      days_to_imaging, days_since_trigger FROM marts.care_gaps"""
        ).fetchall()
    )
    expected = reference.care_gaps()
    assert len(expected) > 300
    assert any(row[1] != row[2] for row in expected)  # triggers after the index
    assert got == expected


@pytest.mark.slow
def test_imaging_overuse_agrees_with_a_plain_python_reference(built):
    con, reference = built
    got = {
        (measure, value): tuple(counts)
        for measure, value, *counts in con.execute(
            """SELECT measure, stratum_value, n_eligible, n_imaged, n_censored
               FROM marts.imaging_overuse"""
        ).fetchall()
    }
    expected = reference.overuse()
    assert expected[("hedis_lbp", "all")][0] > 200
    assert expected[("low_value_imaging", "all")][0] > 100
    assert got == expected


@pytest.mark.slow
def test_rule_performance_agrees_with_a_plain_python_reference(built):
    con, reference = built
    got = {
        (target, rule_type, rule): tuple(counts)
        for target, rule_type, rule, *counts in con.execute(
            "SELECT target, rule_type, rule, tp, fp, fn, tn FROM marts.rule_performance"
        ).fetchall()
    }
    expected = reference.rule_performance()
    assert expected[("any_target", "tier_at_or_above", "low")][0] > 30
    assert got == expected


@pytest.mark.slow
def test_episodes_with_a_washout_shorter_than_the_overuse_window_agree_too(tmp_path):
    """With a 20-day washout (shorter than the 28-day overuse window) the build reads
    low_value_imaging's episodes through int_episodes instead of joining the 0-28-day
    presentations by date; the reference walks the episodes the same way either way."""
    cohort = replace(definition(), washout_days=20)
    data = generate(1000, seed=20240502)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_inputs(con, data.presentations, data.referrals, data.diagnoses, data.patients)
    build_cohorts(con, definition=cohort)
    publish_marts(con, "reference-run", definition=cohort)
    got = {
        (measure, value): tuple(counts)
        for measure, value, *counts in con.execute(
            """SELECT measure, stratum_value, n_eligible, n_imaged, n_censored
               FROM marts.imaging_overuse"""
        ).fetchall()
    }
    expected = Reference(data, cohort).overuse()
    assert expected[("low_value_imaging", "all")][0] > 30
    assert got == expected
