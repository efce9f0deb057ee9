"""Hand-made warehouse inputs for the cohort tests: staging and features tables only.

A presentation is a dict; anything it leaves out gets a plain default (a low-tier
back-pain presentation with no flags). Both staging.intake and
features.presentation_flags are written from it, as the scoring stage would.

Tiers are the version 2 tiers (CLINICAL.md): fixtures name them directly and build with
`definition()`, the cohort definition with that tier order, so that they test the
cohort rules whatever tiers the packaged rules give.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.cohorts.definition import CohortDefinition, load_definition
from pipelines.scoring.output import sql_types, table_ddl
from pipelines.scoring.rules import load_rules
from pipelines.warehouse import create_schemas

D0 = date(2024, 1, 1)
# The tiers of CLINICAL.md version 2, highest first, then the tier outside the cohort.
TIERS = ("emergency", "urgent", "high", "moderate", "low", "not_back_pain")
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


def definition() -> CohortDefinition:
    """The packaged cohort definition with the version 2 tier order."""
    return dataclasses.replace(load_definition(), tiers=TIERS)


def patient(
    patient_id: str,
    died: int | None = None,
    observation_end: int | None = None,
    observation_start: int | None = None,
) -> dict:
    """A row of staging.patients, its dates as day numbers (None: not recorded)."""
    return {
        "patient_id": patient_id,
        "death_date": None if died is None else day(died),
        "observation_start_date": None if observation_start is None else day(observation_start),
        "observation_end_date": None if observation_end is None else day(observation_end),
    }


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
    patients: list[dict] = (),
) -> None:
    """Fill staging.intake, .referrals, .diagnoses, .patients and features.presentation_flags."""
    create_schemas(con)
    con.execute(table_ddl(load_rules()))
    frame = pd.DataFrame(presentations)
    intake_cols = ["encounter_id", "patient_id", "encounter_date", "age_years", "sex"]
    intake = frame[intake_cols + ["smoking_status"]].copy()
    if "dx_codes" in frame:
        intake["dx_codes"] = frame["dx_codes"].astype(object).where(frame["dx_codes"].notna(), None)
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
    if patients:
        _insert(con, "staging.patients", pd.DataFrame(list(patients)).astype(object))


def warehouse(
    tmp_path: Path, presentations, referrals=(), diagnoses=(), patients=()
) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_inputs(con, presentations, referrals, diagnoses, patients)
    return con


def built(tmp_path: Path, presentations, referrals=(), diagnoses=(), data_end=None, patients=()):
    """A warehouse with these inputs, its cohorts built (version 2 tiers) and marts
    published as run `test-run`."""
    from pipelines.cohorts.build import build_cohorts, publish_marts

    con = warehouse(tmp_path, presentations, referrals, diagnoses, patients)
    build_cohorts(con, data_end=data_end, definition=definition())
    publish_marts(con, "test-run", definition=definition())
    return con
