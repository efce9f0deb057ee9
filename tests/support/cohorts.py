"""Hand-made warehouse inputs for the cohort tests: staging and features tables only.

A presentation is a dict; anything it leaves out gets a plain default (a low-tier
back-pain presentation with no flags). Both staging.intake and
features.presentation_flags are written from it, as the scoring stage would.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.scoring.output import sql_types, table_ddl
from pipelines.scoring.rules import load_rules
from pipelines.warehouse import create_schemas

D0 = date(2024, 1, 1)
# features.presentation_flags as the scoring stage writes it: the rules give its shape.
PRESENTATION_FLAGS_COLUMNS = tuple(sql_types(load_rules()).items())

FLAG_DEFAULTS = {
    name: False for name, type_ in PRESENTATION_FLAGS_COLUMNS if type_ == "BOOLEAN"
} | {"back_pain": True}


def day(n: int) -> date:
    """D0 + n days: fixtures speak in day numbers, which makes the arithmetic visible."""
    return D0 + timedelta(days=n)


def presentation(encounter_id: str, patient_id: str, on: int, **values: object) -> dict:
    row: dict[str, object] = {
        "encounter_id": encounter_id,
        "patient_id": patient_id,
        "encounter_date": day(on),
        "age_years": 45,
        "sex": "F",
        "smoking_status": None,
        "pain_site": "lumbar",
        "tier": "low",
        "score": 0,
        "completeness": 1.0,
        "lung_symptom_count": 0,
        "rules_version": "test-rules",
        **FLAG_DEFAULTS,
    }
    row.update(values)
    return row


def referral(referral_id: str, patient_id: str, on: int, **values: object) -> dict:
    return {
        "referral_id": referral_id,
        "patient_id": patient_id,
        "referral_date": day(on),
        "referral_type": "imaging",
        "modality": None,
        "body_region": None,
        "code": None,
        "code_system": None,
        "urgency": None,
        **values,
    }


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    if frame.empty:
        return
    con.register("_rows", frame)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
    finally:
        con.unregister("_rows")


def write_inputs(
    con: duckdb.DuckDBPyConnection,
    presentations: list[dict],
    referrals: list[dict] = (),
    diagnoses: list[dict] = (),
) -> None:
    """Fill staging.intake, staging.referrals, staging.diagnoses and features.presentation_flags."""
    create_schemas(con)
    con.execute(table_ddl(load_rules()))
    frame = pd.DataFrame(presentations)
    intake_cols = ["encounter_id", "patient_id", "encounter_date", "age_years", "sex"]
    intake = frame[intake_cols + ["smoking_status"]].copy()
    intake["smoking_status"] = intake["smoking_status"].astype(object)
    for column in ("back_pain", "prior_cancer", "night_pain", "pain_site"):
        intake[column] = frame[column]
    _insert(con, "staging.intake", intake)
    flag_cols = [name for name, _ in PRESENTATION_FLAGS_COLUMNS]
    _insert(con, "features.presentation_flags", frame[flag_cols])
    if referrals:
        _insert(con, "staging.referrals", pd.DataFrame(list(referrals)).astype(object))
    if diagnoses:
        _insert(con, "staging.diagnoses", pd.DataFrame(list(diagnoses)))


def warehouse(
    tmp_path: Path, presentations, referrals=(), diagnoses=()
) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_inputs(con, presentations, referrals, diagnoses)
    return con


def built(tmp_path: Path, presentations, referrals=(), diagnoses=(), data_end=None):
    """A warehouse with these inputs, its cohorts built and marts published as run `test-run`."""
    from pipelines.cohorts.build import build_cohorts, publish_marts

    con = warehouse(tmp_path, presentations, referrals, diagnoses)
    build_cohorts(con, data_end=data_end)
    publish_marts(con, "test-run")
    return con
