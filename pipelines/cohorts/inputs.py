"""The shape of features.presentation_flags, the scoring table the cohort stage reads.

The scoring stage writes this table (INTERFACES.md); the DDL here lets the cohort
stage's tests and benchmark build hand-made inputs of exactly that shape.
"""

from __future__ import annotations

import duckdb

from pipelines.contracts import load_contract

# The intake booleans other than back_pain, in contract order (= INTERFACES.md order).
SYMPTOM_FLAGS: tuple[str, ...] = tuple(
    c for c in load_contract("intake").columns_of_type("boolean") if c != "back_pain"
)
HISTORY_FLAGS: tuple[str, ...] = ("pain_persistent", "progressive", "repeat_presentation")
OTHER_FLAGS: tuple[str, ...] = (
    "age_40_plus",
    "age_50_plus",
    "thoracic_pain",
    "ever_smoked",
    "neuro_symptom",
)

PRESENTATION_FLAGS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("encounter_id", "VARCHAR"),
    ("patient_id", "VARCHAR"),
    ("encounter_date", "DATE"),
    ("age_years", "INTEGER"),
    ("back_pain", "BOOLEAN"),
    ("pain_site", "VARCHAR"),
    *((name, "BOOLEAN") for name in SYMPTOM_FLAGS + HISTORY_FLAGS + OTHER_FLAGS),
    ("lung_symptom_count", "INTEGER"),
    ("tier", "VARCHAR"),
    ("score", "INTEGER"),
    ("completeness", "DOUBLE"),
    ("rules_version", "VARCHAR"),
)


def create_presentation_flags(con: duckdb.DuckDBPyConnection) -> None:
    """Create an empty features.presentation_flags with the columns of INTERFACES.md."""
    columns = ",\n    ".join(f"{name} {type_}" for name, type_ in PRESENTATION_FLAGS_COLUMNS)
    con.execute(f"CREATE TABLE IF NOT EXISTS features.presentation_flags (\n    {columns}\n)")
