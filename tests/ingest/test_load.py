"""Ingest end to end on a warehouse file: reruns, changed files, removed files, the CLI."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.ingest.load import record_run
from pipelines.ingest.stage import LOADED, REPLACED, UNCHANGED, ingest_directory
from pipelines.warehouse import create_schemas, open_warehouse
from tests.support import ROOT

LOAD_DATE = date(2025, 6, 1)
HEADER = "encounter_id,patient_id,encounter_date,age_years,sex"


def run_ingest(input_dir: Path, warehouse: Path, run_id: str, *, prune: bool = False):
    with open_warehouse(warehouse) as con:
        summary = ingest_directory(con, input_dir, run_id, load_date=LOAD_DATE, prune=prune)
        record_run(con, summary, input_dir)
    return summary


def fetch(warehouse: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_rerun_adds_nothing_and_a_changed_file_replaces_its_rows(tmp_path: Path):
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    warehouse = tmp_path / "w.duckdb"
    (input_dir / "intake_a.csv").write_text(
        f"{HEADER}\nE1,P1,2024-01-02,55,F\nE2,P2,2024-01-03,40,Q\n", encoding="utf-8"
    )
    (input_dir / "intake_b.csv").write_text(f"{HEADER}\nE3,P3,2024-01-04,60,M\n", encoding="utf-8")

    first = run_ingest(input_dir, warehouse, "r1")
    assert [f.status for f in first.files] == [LOADED, LOADED]
    counts_sql = (
        "SELECT (SELECT count(*) FROM raw.intake), (SELECT count(*) FROM staging.intake), "
        "(SELECT count(*) FROM quarantine.intake)"
    )
    assert fetch(warehouse, counts_sql) == [(3, 2, 1)]

    second = run_ingest(input_dir, warehouse, "r2")
    assert [f.status for f in second.files] == [UNCHANGED, UNCHANGED]
    assert fetch(warehouse, counts_sql) == [(3, 2, 1)]
    assert fetch(
        warehouse, "SELECT rows_read, files_unchanged FROM ops.run_log WHERE run_id = 'r2'"
    ) == [(0, 2)]

    # intake_a changes: E2 is fixed, E4 added; intake_b's rows are untouched.
    (input_dir / "intake_a.csv").write_text(
        f"{HEADER}\nE1,P1,2024-01-02,55,F\nE2,P2,2024-01-03,40,M\nE4,P4,2024-01-05,70,F\n",
        encoding="utf-8",
    )
    third = run_ingest(input_dir, warehouse, "r3")
    assert [f.status for f in third.files] == [LOADED, UNCHANGED]
    assert fetch(warehouse, counts_sql) == [(4, 4, 0)]
    assert fetch(
        warehouse,
        "SELECT encounter_id, regexp_extract(source_file, '[^/]+$'), run_id "
        "FROM staging.intake ORDER BY 1",
    ) == [
        ("E1", "intake_a.csv", "r3"),
        ("E2", "intake_a.csv", "r3"),
        ("E3", "intake_b.csv", "r1"),
        ("E4", "intake_a.csv", "r3"),
    ]
    assert fetch(
        warehouse,
        "SELECT regexp_extract(file_path, '[^/]+$'), status, run_id, rows_read "
        "FROM ops.ingest_manifest ORDER BY 1, 3",
    ) == [
        ("intake_a.csv", REPLACED, "r1", 2),
        ("intake_a.csv", LOADED, "r3", 3),
        ("intake_b.csv", LOADED, "r1", 1),
    ]
    assert fetch(
        warehouse,
        "SELECT run_id, files_loaded, rows_read, rows_accepted, rows_quarantined "
        "FROM ops.run_log ORDER BY run_id",
    ) == [("r1", 2, 3, 2, 1), ("r2", 0, 0, 0, 0), ("r3", 1, 3, 3, 0)]


def test_removed_file_keeps_its_rows_unless_pruned(tmp_path: Path):
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    warehouse = tmp_path / "w.duckdb"
    (input_dir / "intake_a.csv").write_text(f"{HEADER}\nE1,P1,2024-01-02,55,F\n", encoding="utf-8")
    (input_dir / "intake_b.csv").write_text(f"{HEADER}\nE2,P2,2024-01-02,55,F\n", encoding="utf-8")
    run_ingest(input_dir, warehouse, "r1")
    (input_dir / "intake_b.csv").unlink()

    kept = run_ingest(input_dir, warehouse, "r2")
    assert [Path(m).name for m in kept.missing] == ["intake_b.csv"]
    assert fetch(warehouse, "SELECT encounter_id FROM staging.intake ORDER BY 1") == [
        ("E1",),
        ("E2",),
    ]

    pruned = run_ingest(input_dir, warehouse, "r3", prune=True)
    assert [Path(p).name for p in pruned.pruned] == ["intake_b.csv"]
    assert fetch(warehouse, "SELECT encounter_id FROM staging.intake") == [("E1",)]
    assert fetch(warehouse, "SELECT count(*) FROM raw.intake") == [(1,)]
    assert fetch(
        warehouse,
        "SELECT status FROM ops.ingest_manifest WHERE file_path LIKE '%intake_b.csv'",
    ) == [("pruned",)]


# ------------------------------------------------------------------ property


VALID_ROW = st.tuples(
    st.sampled_from(["F", "M", "X", "U"]),
    st.integers(min_value=0, max_value=120),
    st.dates(min_value=date(1990, 1, 1), max_value=LOAD_DATE),
)
INVALID_ROW = st.one_of(
    st.just("{id},P1,2024-01-02,55,Q"),  # sex not allowed
    st.just("{id},P1,2024-02-30,55,F"),  # impossible date
    st.just("{id},P1,2024-01-02,-3,F"),  # age below 0
    st.just("{id},P1,2024-01-02,old,F"),  # age not an integer
    st.just("{id},,2024-01-02,55,F"),  # patient missing
    st.just("{id},P1,2024-01-02"),  # ragged
    st.just('{id},P1,"2024-01-02,55,F'),  # unbalanced quote
    st.just("{id},P1,2099-01-01,55,F"),  # after the load date
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.one_of(VALID_ROW, INVALID_ROW), min_size=1, max_size=40))
def test_every_row_is_accepted_or_quarantined_and_valid_rows_are_accepted(tmp_path_factory, rows):
    input_dir = tmp_path_factory.mktemp("in")
    lines, valid_ids = [], []
    for i, row in enumerate(rows):
        encounter_id = f"E{i}"
        if isinstance(row, tuple):
            sex, age, day = row
            lines.append(f"{encounter_id},P{i},{day.isoformat()},{age},{sex}")
            valid_ids.append(encounter_id)
        else:
            lines.append(row.format(id=encounter_id))
    (input_dir / "intake.csv").write_text(HEADER + "\n" + "\n".join(lines) + "\n", "utf-8")
    con = duckdb.connect()
    create_schemas(con)
    summary = ingest_directory(con, input_dir, "p", load_date=LOAD_DATE)
    report = summary.files[0]
    assert report.rows_read == len(rows)
    assert report.accepted + report.quarantined == len(rows)
    assert report.accepted == len(valid_ids)
    staged = [r[0] for r in con.execute("SELECT encounter_id FROM staging.intake").fetchall()]
    assert sorted(staged) == sorted(valid_ids)


# ------------------------------------------------------------------ CLI


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(ROOT),
    )


@pytest.mark.slow
def test_validate_cli_exit_codes_and_no_traceback(tmp_path: Path):
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "intake.csv").write_text(f"{HEADER}\nE1,P1,2024-01-02,55,F\n", encoding="utf-8")
    result = cli("validate", str(clean), "--docs", str(tmp_path / "docs"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "intake.csv  intake  ok         1         1            0" in result.stdout
    assert (tmp_path / "docs" / "index.html").exists()

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "intake.csv").write_text(f"{HEADER}\nE1,P1,2024-02-30,55,F\nE2,P2\n", "utf-8")
    (bad / "intake_x.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    (bad / "referrals.csv").write_text("name,ssn\nAnn,123-45-6789\n", encoding="utf-8")
    (bad / "diagnoses.parquet").write_bytes(b"PAR1 not really")
    result = cli("validate", str(bad), "--docs", str(tmp_path / "docs"), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "date(encounter_date) 1, field_count 1" in result.stdout
    assert "intake_x.csv.gz: cannot be decompressed" in result.stdout
    assert "column(s) name, ssn hold direct identifiers" in result.stdout
    assert "diagnoses.parquet: not a readable Parquet file" in result.stdout

    missing = cli("validate", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr
    assert "nope: not a directory" in missing.stderr


@pytest.mark.slow
def test_run_reports_the_ingest_stage_and_goes_on_past_a_rejected_file(tmp_path: Path):
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    (input_dir / "intake.csv").write_text(
        f"{HEADER}\nE1,P1,2024-01-02,55,F\nE2,P2,2024-01-03,104,M\nE3,P3,2024-01-04,40,Q\n",
        encoding="utf-8",
    )
    (input_dir / "referrals.csv").write_text(
        "referral_id,patient_id,referral_date,referral_type,phone\nR1,P1,2024-01-05,imaging,555\n",
        encoding="utf-8",
    )
    warehouse = tmp_path / "w.duckdb"
    args = ["run", "--input", str(input_dir), "--warehouse", str(warehouse)]
    result = cli(*args, "--docs", str(tmp_path / "docs"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # Every file the run validated has its page, the rejected one too.
    pages = sorted(p.name for p in (tmp_path / "docs" / "runs").rglob("*.html"))
    assert pages == ["intake.csv.html", "referrals.csv.html"]
    assert f"validation report (Data Docs): {tmp_path / 'docs' / 'index.html'}" in result.stdout
    assert "intake.csv     intake     loaded       3         2            1  allowed(sex) 1" in (
        result.stdout
    )
    assert "referrals.csv: column(s) phone hold direct identifiers" in result.stdout
    assert "0 match(es) in free text replaced by [REDACTED]; 1 age(s) above 90 stored as 90" in (
        result.stdout
    )
    assert fetch(
        warehouse,
        "SELECT rows_read, rows_accepted, rows_quarantined, files_rejected, ages_capped "
        "FROM ops.run_log",
    ) == [(3, 2, 1, 1, 1)]


def test_referrals_waiting_for_their_patients_are_accepted_when_intake_arrives(tmp_path: Path):
    """Incremental equals from scratch: referrals first quarantined for an unknown patient
    are checked again when the intake naming that patient arrives, though unchanged."""
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    warehouse = tmp_path / "w.duckdb"
    (input_dir / "intake_a.csv").write_text(f"{HEADER}\nE1,P1,2024-01-02,55,F\n", encoding="utf-8")
    (input_dir / "referrals.csv").write_text(
        "referral_id,patient_id,referral_date,referral_type\n"
        "R1,P1,2024-01-05,imaging\nR2,P2,2024-02-05,imaging\n",
        encoding="utf-8",
    )
    first = run_ingest(input_dir, warehouse, "r1")
    assert [(f.table, f.status, f.accepted, f.quarantined) for f in first.files] == [
        ("intake", LOADED, 1, 0),
        ("referrals", LOADED, 1, 1),
    ]
    # P2's intake arrives; the referrals file itself is unchanged.
    (input_dir / "intake_b.csv").write_text(f"{HEADER}\nE2,P2,2024-02-01,61,M\n", encoding="utf-8")
    second = run_ingest(input_dir, warehouse, "r2")
    assert [(f.path.rsplit("/", 1)[-1], f.status) for f in second.files] == [
        ("intake_a.csv", UNCHANGED),
        ("intake_b.csv", LOADED),
        ("referrals.csv", LOADED),
    ]
    assert fetch(warehouse, "SELECT referral_id FROM staging.referrals ORDER BY 1") == [
        ("R1",),
        ("R2",),
    ]
    assert fetch(warehouse, "SELECT count(*) FROM quarantine.referrals") == [(0,)]
    # A third run with nothing new skips everything, referrals included.
    third = run_ingest(input_dir, warehouse, "r3")
    assert {f.status for f in third.files} == {UNCHANGED}

    # The same files from scratch give the same staging and quarantine.
    fresh = tmp_path / "fresh.duckdb"
    run_ingest(input_dir, fresh, "f1")
    for table in ("staging.referrals", "staging.intake", "quarantine.referrals"):
        sql = f"SELECT * EXCLUDE (run_id) FROM {table} ORDER BY ALL"
        assert fetch(warehouse, sql) == fetch(fresh, sql), table
