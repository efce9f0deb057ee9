"""Parity: random intake tables (with random diagnoses) give equal frames from the
pandas and DuckDB engines.

Complaints are random sentences of phrases, cues of every kind, terminations,
commas and sentence ends (tests/support/scoring.py). Also: a later visit never
changes an earlier presentation's result.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.scoring.engines import score_frame
from pipelines.scoring.rules import load_rules
from tests.support.scoring import BOOLEANS, CODES, DIAGNOSIS_CODES, FRAGMENTS, intake_frame

RULES = load_rules()


@st.composite
def intake_rows(draw) -> list[dict]:
    n = draw(st.integers(1, 40))
    ids = draw(st.permutations([f"E{i:02d}" for i in range(n)]))
    rows = []
    for i in range(n):
        row = {
            "encounter_id": ids[i],
            "patient_id": draw(st.sampled_from(["P1", "P2", "P3"])),
            "encounter_date": date(2024, 1, 1) + timedelta(days=draw(st.integers(0, 300))),
            "age_years": draw(st.none() | st.integers(0, 90)),
            "sex": "F",
            "smoking_status": draw(
                st.sampled_from([None, "never", "former", "current", "unknown"])
            ),
            "pain_site": draw(st.sampled_from([None, None, "lumbar", "thoracic", "cervical"])),
            "pain_duration_days": draw(st.none() | st.integers(0, 60)),
            "pain_score": draw(st.none() | st.integers(0, 10)),
            "chief_complaint": draw(
                st.none() | st.lists(st.sampled_from(FRAGMENTS), max_size=12).map(" ".join)
            ),
            "dx_codes": draw(
                st.none() | st.lists(st.sampled_from(CODES), max_size=3).map(";".join)
            ),
        }
        for name in BOOLEANS:
            row[name] = draw(st.sampled_from([None, None, True, False]))
        rows.append(row)
    # The frame is built in the tests: building it here touched the global `random`
    # state inside the strategy, which Hypothesis warns makes failures irreproducible.
    return rows


@st.composite
def diagnoses_rows(draw) -> pd.DataFrame | None:
    """None (no diagnoses table), or rows for the intake's patients and one other."""
    if draw(st.booleans()):
        return None
    rows = [
        {
            "patient_id": draw(st.sampled_from(["P1", "P2", "P3", "P9"])),
            "diagnosis_date": pd.Timestamp(date(2024, 1, 1))
            + pd.Timedelta(days=draw(st.integers(-30, 330))),
            "code": code,
            "code_system": system,
        }
        for code, system in draw(st.lists(st.sampled_from(DIAGNOSIS_CODES), max_size=5))
    ]
    return pd.DataFrame(rows, columns=["patient_id", "diagnosis_date", "code", "code_system"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(intake_rows(), diagnoses_rows())
def test_engines_return_equal_frames(rows: list[dict], diagnoses: pd.DataFrame | None):
    table = intake_frame(rows)
    by_duckdb = score_frame(table, "duckdb", RULES, diagnoses)
    by_pandas = score_frame(table, "pandas", RULES, diagnoses)
    assert list(by_duckdb.columns) == list(by_pandas.columns) == RULES.output_columns
    for column in RULES.output_columns:
        pd.testing.assert_series_equal(by_pandas[column], by_duckdb[column], check_exact=True)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(intake_rows(), diagnoses_rows(), st.sampled_from(["duckdb", "pandas"]))
def test_a_later_visit_never_changes_an_earlier_result(
    rows: list[dict], diagnoses: pd.DataFrame | None, engine: str
):
    table = intake_frame(rows)
    full = score_frame(table, engine, RULES, diagnoses).set_index("encounter_id")
    order = table.sort_values(["patient_id", "encounter_date", "encounter_id"])
    last = order.groupby("patient_id").tail(1)["encounter_id"]
    earlier = table[~table["encounter_id"].isin(last)]
    if earlier.empty:
        return
    alone = score_frame(earlier, engine, RULES, diagnoses).set_index("encounter_id")
    pd.testing.assert_frame_equal(alone, full.loc[alone.index], check_exact=True)
