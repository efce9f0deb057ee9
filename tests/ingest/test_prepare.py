"""The guard at ingest: what an attacker or a careless export puts in a file is not stored.

Each test writes a small file by hand, ingests it, and looks in every place the
warehouse keeps text (raw, staging, quarantine, the run's messages) and in the Data
Docs for what must not be there.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from pipelines.ingest.stage import ingest_directory
from pipelines.warehouse import create_schemas
from tests.ingest.test_ingest import HEADER, assert_counts, ingest, quarantined, report

R = "[REDACTED]"
INJECTION = "x' || (select content from read_text('/etc/passwd')) || '"


def stored_text(con: duckdb.DuckDBPyConnection) -> str:
    """Every value of every table of raw, staging and quarantine, and the manifest, as text."""
    tables = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema IN ('raw', 'staging', 'quarantine', 'ops')"
    ).fetchall()
    return "\n".join(
        str(con.execute(f'SELECT * FROM {schema}."{name}"').fetchall()) for schema, name in tables
    )


def test_a_column_name_that_is_sql_stores_nothing_of_it(tmp_path: Path):
    quoted = INJECTION.replace('"', '""')
    text = f'{HEADER},"{quoted}"\nE1,P1,2024-01-02,55,F,secret-value\n'
    summary, con = ingest(tmp_path, {"intake.csv": text})
    r = report(summary, "intake.csv")
    assert_counts(r, 1, 1, 0)
    assert r.warnings == [
        f"intake.csv: column(s) {INJECTION} not in the contract of intake; not stored"
    ]
    stored = stored_text(con)
    assert "root:" not in stored
    assert "secret-value" not in stored
    raw_columns = [c[0] for c in con.execute("DESCRIBE raw.intake").fetchall()]
    assert "extra_columns" not in raw_columns


def test_identifiers_in_every_table_are_quarantined_redacted(tmp_path: Path):
    intake = (
        f"{HEADER},dx_codes,pain_site,smoking_status,chief_complaint\n"
        "E1,P1,2024-01-02,55,F,M54.5,lumbar,never,back pain\n"
        "E2,P2,2024-01-02,55,F,MR# 998877,lumbar,never,back pain\n"
        "E3,P3,2024-01-02,55,F,M54.5,Mr Jones,never,back pain\n"
        "E4,P4,2024-01-02,55,F,M54.5,lumbar,never,pt John Smith says hi\n"
        "E5,P5,2024-01-02,55,F,M54.5,lumbar,DOB 01/02/1960,back pain\n"
    )
    referrals = (
        "referral_id,patient_id,referral_date,referral_type,code,code_system\n"
        "R1,P1,2024-01-05,imaging,72148,CPT\n"
        "R2,P1,2024-01-05,imaging,123 45 6789,CPT\n"
        "R3,P1,2024-01-05,imaging,72148,+44 20 7946 0958\n"
    )
    diagnoses = (
        "patient_id,diagnosis_date,code,code_system\n"
        "P1,2024-02-01,C79.51,ICD10CM\n"
        "P1,2024-02-01,name(at)example.org,ICD10CM\n"
        "P1,2024-02-01,363346000,SNOMED\n"
    )
    docs = tmp_path / "docs"
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    for name, content in {
        "intake.csv": intake,
        "referrals.csv": referrals,
        "diagnoses.csv": diagnoses,
    }.items():
        (input_dir / name).write_text(content, encoding="utf-8")
    con = duckdb.connect()
    create_schemas(con)
    summary = ingest_directory(con, input_dir, "run-1", load_date=date(2025, 6, 1), docs_dir=docs)
    assert_counts(report(summary, "intake.csv"), 5, 2, 3)
    assert_counts(report(summary, "referrals.csv"), 3, 1, 2)
    assert_counts(report(summary, "diagnoses.csv"), 3, 2, 1)
    # Free text is redacted in place and its row kept; any other column sends the row to
    # quarantine with the value redacted (a category also fails its allowed set, as [REDACTED]).
    assert quarantined(con) == [
        (3, "dx_codes", "identifier", R),
        (4, "pain_site", "allowed", R),
        (4, "pain_site", "identifier", R),
        (6, "smoking_status", "allowed", R),
        (6, "smoking_status", "identifier", R),
    ]
    staged = con.execute("SELECT chief_complaint FROM staging.intake ORDER BY source_row")
    assert staged.fetchall() == [("back pain",), (f"{R} says hi",)]
    raw = con.execute("SELECT smoking_status FROM raw.intake WHERE encounter_id = 'E5'")
    assert raw.fetchone() == (R,)
    assert quarantined(con, "referrals") == [
        (3, "code", "identifier", R),
        (4, "code_system", "allowed", R),
        (4, "code_system", "identifier", R),
    ]
    assert quarantined(con, "diagnoses") == [(3, "code", "identifier", R)]
    stored = stored_text(con)
    pages = "\n".join(p.read_text(encoding="utf-8") for p in docs.rglob("*.html"))
    for secret in ("998877", "Jones", "1960", "John", "6789", "7946", "example.org"):
        assert secret not in stored, secret
        assert secret not in pages, secret


def test_full_width_age_is_read_as_its_digits(tmp_path: Path):
    text = f"{HEADER}\nE1,P1,2024-01-02,５４,F\nE2,P2,2024-01-02,１０４,M\n"
    summary, con = ingest(tmp_path, {"intake.csv": text})
    r = report(summary, "intake.csv")
    assert_counts(r, 2, 2, 0)
    assert r.capped == 1
    ages = con.execute("SELECT encounter_id, age_years FROM staging.intake ORDER BY 1").fetchall()
    assert ages == [("E1", 54), ("E2", 90)]


def test_ages_above_90_in_any_numeric_form_are_stored_as_90(tmp_path: Path):
    text = (
        f"{HEADER}\nE1,P1,2024-01-02,104.0,F\nE2,P2,2024-01-02,1.04e2,M\nE3,P3,2024-01-02,+97,M\n"
    )
    summary, con = ingest(tmp_path, {"intake.csv": text})
    r = report(summary, "intake.csv")
    assert_counts(r, 3, 3, 0)
    assert r.capped == 3
    for schema in ("raw", "staging"):
        ages = con.execute(f"SELECT CAST(age_years AS VARCHAR) FROM {schema}.intake").fetchall()
        assert ages == [("90",)] * 3


def test_ids_that_are_spreadsheet_formulas_are_quarantined(tmp_path: Path):
    text = (
        f"{HEADER},chief_complaint\n"
        "\"=cmd|' /C calc'!A0\",P1,2024-01-02,55,F,back pain\n"
        "E2,@SUM(1+1),2024-01-02,55,F,back pain\n"
        "E3,P3,2024-01-02,55,F,-ve straight leg raise\n"
    )
    summary, con = ingest(tmp_path, {"intake.csv": text})
    assert_counts(report(summary, "intake.csv"), 3, 1, 2)
    assert quarantined(con) == [
        (2, "encounter_id", "formula", "=cmd|' /C calc'!A0"),
        (3, "patient_id", "formula", "@SUM(1+1)"),
    ]
    assert con.execute("SELECT chief_complaint FROM staging.intake").fetchall() == [
        ("-ve straight leg raise",)
    ]


def test_an_older_warehouse_loses_its_extra_columns(tmp_path: Path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    create_schemas(con)
    # A raw table as it was made before: with a column for values outside the contract.
    con.execute("ALTER TABLE raw.intake ADD COLUMN extra_columns VARCHAR")
    con.execute(
        "INSERT INTO raw.intake (encounter_id, extra_columns) VALUES ('E0', '{\"phone\":\"x\"}')"
    )
    con.close()
    con = duckdb.connect(str(path))
    create_schemas(con)
    columns = [c[0] for c in con.execute("DESCRIBE raw.intake").fetchall()]
    assert "extra_columns" not in columns
    assert con.execute("SELECT encounter_id FROM raw.intake").fetchall() == [("E0",)]
    summary, con = ingest(tmp_path, {"intake.csv": f"{HEADER}\nE1,P1,2024-01-02,55,F\n"}, con)
    assert_counts(report(summary, "intake.csv"), 1, 1, 0)
