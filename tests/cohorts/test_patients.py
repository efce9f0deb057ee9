"""The optional `patients` table: ingested and validated like the other tables.

Rows and rules are worked out from the fixture text: the contract (schemas/patients.yml)
makes patient_id required and unique and the three dates ISO dates, the death date not
after the load date.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from pipelines.ingest.stage import ingest_directory
from pipelines.warehouse import create_schemas

LOAD_DATE = date(2025, 6, 1)
INTAKE = (
    "encounter_id,patient_id,encounter_date,age_years,sex\n"
    "E1,P1,2024-01-02,55,F\nE2,P2,2024-02-03,33,M\n"
)
PATIENTS = (
    "patient_id,death_date,observation_start_date,observation_end_date\n"
    "P1,2024-03-01,2020-01-01,2024-12-31\n"  # row 2: kept
    "P2,,2019-05-01,\n"  # row 3: kept, alive and still observed
    "P1,,2020-01-01,2025-01-01\n"  # row 4: P1 again -> unique
    ",2024-01-01,,\n"  # row 5: no patient_id -> required
    "P3,2024-02-30,,\n"  # row 6: no such day -> date
    "P4,2026-01-01,,\n"  # row 7: after the load date
    "P9,,2021-01-01,2023-06-30\n"  # row 8: kept, though P9 never presented
)


def test_patients_file_is_validated_quarantined_and_staged(tmp_path: Path):
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    (input_dir / "intake.csv").write_text(INTAKE, encoding="utf-8")
    (input_dir / "patients.csv").write_text(PATIENTS, encoding="utf-8")
    con = duckdb.connect()
    create_schemas(con)
    summary = ingest_directory(con, input_dir, "run-1", load_date=LOAD_DATE)
    report = next(f for f in summary.files if Path(f.path).name == "patients.csv")
    assert (report.rows_read, report.accepted, report.quarantined) == (7, 3, 4)
    assert con.execute(
        "SELECT source_row, column_name, rule, value FROM quarantine.patients ORDER BY 1"
    ).fetchall() == [
        (4, "patient_id", "unique", "P1"),
        (5, "patient_id", "required", None),
        (6, "death_date", "date", "2024-02-30"),
        (7, "death_date", "not_after_load_date", "2026-01-01"),
    ]
    assert con.execute(
        "SELECT patient_id, death_date, observation_start_date, observation_end_date "
        "FROM staging.patients ORDER BY source_row"
    ).fetchall() == [
        ("P1", date(2024, 3, 1), date(2020, 1, 1), date(2024, 12, 31)),
        ("P2", None, date(2019, 5, 1), None),
        ("P9", None, date(2021, 1, 1), date(2023, 6, 30)),
    ]
