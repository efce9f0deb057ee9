"""The flow's cohort stages (build_cohorts, publish_marts, publish_copy, export_extracts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cohorts import presentation, referral, warehouse

SCRIPT = """
import json, sys
from pipelines.flows.prefect_env import configure_prefect
configure_prefect()
from prefect import flow
from pipelines.flows.run import build_cohorts, export_extracts, publish_copy, publish_marts

@flow
def stages(path: str, out: str):
    build_cohorts(path)
    marts = publish_marts(path, "flow-run")
    publish_copy(path, path, "flow-run")
    return {"marts": marts, "export": export_extracts(path, out)}

print(json.dumps(stages(sys.argv[1], sys.argv[2]), default=str))
"""


@pytest.mark.slow
def test_cohort_stages_build_publish_and_export(tmp_path: Path):
    rows = [presentation(f"E{i:02d}", f"P{i:02d}", 0) for i in range(12)]
    rows.append(presentation("X", "Z", 40, back_pain=False, tier="not_back_pain"))
    con = warehouse(tmp_path, rows, [referral("R1", "P01", 5)])
    con.close()
    out = tmp_path / "extract"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "w.duckdb"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["marts"]["index_presentations"] == 12
    assert summary["export"]["cohort_summary.parquet"] == summary["marts"]["cohort_summary"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_id"] == "flow-run"
