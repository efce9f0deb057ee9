"""The `redflags run` flow end to end on a small hand-made input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.support.orchestration import subprocess_env

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
        # No Prefect settings but the session's server: the run sets its own quiet console.
        env=subprocess_env(PREFECT_API_URL=os.environ["PREFECT_API_URL"]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    # The console is our summary on stdout and our progress lines on stderr, nothing of
    # Prefect's (its INFO lines go to the server) or Great Expectations'.
    run_line, *out = result.stdout.splitlines()
    assert re.fullmatch(rf"run \S+: {tmp_path / 'in'} -> {warehouse}", run_line)
    # Every row is valid (referral R1 names patient P1 of the intake): all accepted.
    assert out == [
        "file           table      status  rows  accepted  quarantined  top failing rules",
        "intake.csv     intake     loaded     3         3            0",
        "referrals.csv  referrals  loaded     1         1            0",
        "total: 4 rows read = 4 accepted + 0 quarantined",
        f"validation report (Data Docs): {tmp_path / 'docs' / 'index.html'}",
        "scored 3 presentations (duckdb)",
        "  tiers: moderate 1, low 1, not_back_pain 1",
        "index presentations: 1; care gaps: 0",
        f"report: {tmp_path / 'report.html'} (minimum cell 11)",
        f'query the marts: redflags query "SELECT ..." -w {warehouse}',
    ]
    assert (tmp_path / "report.html").is_file()
    # The long steps said what they were doing, on stderr.
    assert result.stderr.splitlines() == [
        "reading and validating intake.csv (intake)\u2026",
        "loading 3 rows of intake.csv\u2026",
        "reading and validating referrals.csv (referrals)\u2026",
        "loading 1 row of referrals.csv\u2026",
        "writing the validation pages\u2026",
        "scoring presentations (duckdb)\u2026",
        "building cohorts and marts\u2026",
        "publishing the marts and auditing their release (k = 11)\u2026",
        "writing the published copy for readers\u2026",
        "writing the report\u2026",
    ]
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
