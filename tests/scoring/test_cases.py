"""The hand-worked cases of tests/fixtures/scoring_cases.yml, through both engines."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pipelines.scoring.engines import score_frame
from pipelines.scoring.rules import load_rules
from tests.support.scoring import intake_frame, load_cases

DEFAULTS, CASES = load_cases()
RULES = load_rules()


def test_there_are_at_least_40_cases_with_unique_names():
    names = [c["name"] for c in CASES]
    assert len(names) >= 40
    assert len(set(names)) == len(names)


def test_every_tier_is_expected_somewhere():
    tiers = {e.get("tier") for c in CASES for e in c["expect"].values()}
    assert set(RULES.tier_names) <= tiers


def _same(actual: object, expected: object) -> bool:
    if expected is None:
        return (
            actual is pd.NA or actual is None or (isinstance(actual, float) and math.isnan(actual))
        )
    if isinstance(expected, float):
        return actual == pytest.approx(expected, rel=1e-12)
    return actual is not pd.NA and actual == expected


def _all_cases_as_one_table() -> pd.DataFrame:
    """Every case's rows in one table; ids prefixed by the case number keep cases apart."""
    rows = []
    for n, case in enumerate(CASES):
        for row in case["rows"]:
            row = {**DEFAULTS, **row}
            rows.append(
                {
                    **row,
                    "encounter_id": f"{n}:{row['encounter_id']}",
                    "patient_id": f"{n}:{row['patient_id']}",
                }
            )
    return intake_frame(rows)


def _all_diagnoses() -> pd.DataFrame:
    """Every case's diagnoses rows, patients prefixed by the case number as above."""
    rows = [
        {**d, "patient_id": f"{n}:{d.get('patient_id', DEFAULTS['patient_id'])}"}
        for n, case in enumerate(CASES)
        for d in case.get("diagnoses", [])
    ]
    frame = pd.DataFrame(rows, columns=["patient_id", "diagnosis_date", "code", "code_system"])
    frame["diagnosis_date"] = pd.to_datetime(frame["diagnosis_date"])
    return frame


@pytest.fixture(scope="module", params=["duckdb", "pandas"])
def scored(request) -> pd.DataFrame:
    result = score_frame(_all_cases_as_one_table(), request.param, RULES, _all_diagnoses())
    return result.set_index("encounter_id")


@pytest.mark.parametrize("n", range(len(CASES)), ids=[c["name"] for c in CASES])
def test_case(scored: pd.DataFrame, n: int):
    case = CASES[n]
    wrong = {
        f"{eid}.{column}": (scored.loc[f"{n}:{eid}", column], want)
        for eid, expected in case["expect"].items()
        for column, want in expected.items()
        if not _same(scored.loc[f"{n}:{eid}", column], want)
    }
    assert not wrong, f"(actual, expected): {wrong}"


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_one_row_per_intake_row(engine: str):
    table = _all_cases_as_one_table()
    result = score_frame(table, engine, RULES)
    assert sorted(result["encounter_id"]) == sorted(table["encounter_id"])
