"""The `redflags run` flow end to end on a small hand-made input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

INTAKE = """encounter_id,patient_id,encounter_date,age_years,sex,chief_complaint
E1,P1,2024-01-02,55,F,"back pain, denies weight loss"
E2,P2,2024-02-03,33,M,cough
E3,P1,2024-03-04,55,F,low back pain
"""
REFERRALS = """referral_id,patient_id,referral_date,referral_type
R1,P1,2024-01-05,imaging
"""


@pytest.mark.slow
def test_run_loads_scores_and_publishes(tmp_path: Path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "intake.csv").write_text(INTAKE, encoding="utf-8")
    (tmp_path / "in" / "referrals.csv").write_text(REFERRALS, encoding="utf-8")
    warehouse = tmp_path / "w.duckdb"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "--input",
            str(tmp_path / "in"),
            "--warehouse",
            str(warehouse),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    # Every row is valid (referral R1 names patient P1 of the intake): all accepted.
    assert [line.split()[:6] for line in out if line.startswith(("intake.csv", "referrals."))] == [
        ["intake.csv", "intake", "loaded", "3", "3", "0"],
        ["referrals.csv", "referrals", "loaded", "1", "1", "0"],
    ]
    assert "total: 4 rows read = 4 accepted + 0 quarantined" in out
    assert "scored 3 presentations (duckdb)" in out
    assert f"report: {tmp_path / 'report.html'}" in out
    assert (tmp_path / "report.html").is_file()
    # The long steps said what they were doing, on stderr.
    steps = ["scoring presentations (duckdb)\u2026", "building cohorts and marts\u2026"]
    assert [line for line in result.stderr.splitlines() if line in steps] == steps
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT count(*) FROM raw.intake").fetchone()[0] == 3
    assert con.execute("SELECT count(*) FROM raw.referrals").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM raw.diagnoses").fetchone()[0] == 0
    rows = con.execute(
        "SELECT encounter_id, source_row FROM staging.intake ORDER BY encounter_id"
    ).fetchall()
    assert rows == [("E1", 2), ("E2", 3), ("E3", 4)]
    scored = con.execute("SELECT count(*) FROM features.presentation_flags").fetchone()[0]
    assert scored == 3
    published = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts'"
    ).fetchone()[0]
    assert published > 0
    # Prefect's and Great Expectations' own chatter stays out of the user's console.
    console = (result.stdout + result.stderr).lower()
    assert "analytics" not in console
    assert "ephemeral docs site" not in console


def test_missing_input_dir_is_one_clear_line(tmp_path: Path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "--input",
            str(tmp_path / "nope"),
            "--warehouse",
            str(tmp_path / "w.duckdb"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "nope: not a directory" in result.stderr
