"""`redflags export` through the console: files, manifest, dates removed, cells suppressed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipelines.cohorts.build import build_cohorts, publish_marts
from pipelines.cohorts.export import export
from tests.support.cohorts import presentation, referral, warehouse


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """30 index presentations: 25 F, 5 M; 12 in 2023, 18 in 2024; data end 2024-07-19."""
    tmp = tmp_path_factory.mktemp("export")
    rows = [
        presentation(
            f"E{i:02d}",
            f"P{i:02d}",
            -200 if i < 12 else 0,
            sex="F" if i < 25 else "M",
            chief_complaint="free text that must not leave",
        )
        for i in range(30)
    ]
    rows[0]["age_years"] = 97  # above the cap the contract should have applied
    rows.append(presentation("LATE", "Z", 200, back_pain=False, tier="not_back_pain"))
    refs = [referral(f"R{i:02d}", f"P{i:02d}", 3) for i in range(12, 30)]
    con = warehouse(tmp, rows, refs)
    build_cohorts(con)
    publish_marts(con, "run-x")
    con.close()
    return tmp / "w.duckdb"


def redflags(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, timeout=120
    )


def summary_cell(directory: Path, stratum_value: str, column: str):
    frame = pd.read_parquet(directory / "cohort_summary.parquet")
    row = frame[
        (frame["stratum_value"] == stratum_value)
        & (frame["window_days"] == 90)
        & (frame["outcome"] == "imaging_any")
    ]
    assert len(row) == 1
    value = row[column].iloc[0]
    return None if pd.isna(value) else value


@pytest.mark.slow
def test_export_files_manifest_and_suppression(published: Path, tmp_path: Path):
    out = tmp_path / "extract"
    result = redflags("export", "--out", str(out), "-w", str(published))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_id"] == "run-x"
    assert manifest["rules_version"] == "test-rules"
    assert manifest["suppression"]["min_cell"] == 11
    assert manifest["tables"] == [
        "index_presentations",
        "cohort_summary",
        "time_to_referral",
        "imaging_overuse",
        "rule_performance",
        "documentation_quality",
    ]
    for item in manifest["files"]:
        path = out / item["path"]
        assert pq.read_metadata(path).num_rows == item["rows"]
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    # record level: partitioned by index year, no exact date, no free text
    by_year = {
        f["path"].split("/")[1]: f["rows"]
        for f in manifest["files"]
        if f["table"] == "index_presentations"
    }
    assert by_year == {"index_year=2023": 12, "index_year=2024": 18}
    records = pd.read_parquet(out / "index_presentations")
    assert len(records) == 30
    assert "index_date" not in records.columns
    assert "chief_complaint" not in records.columns
    assert not any(
        str(t).startswith(("date", "timestamp"))
        for t in manifest["schema"]["index_presentations"].values()
    )
    assert sorted(records["index_year_month"].unique()) == ["2023-06", "2024-01"]
    assert records["age_years"].max() == 90
    # aggregate: M has 5 (suppressed); F's 25 is the complement, or all - F = M
    assert summary_cell(out, "all", "n_eligible") == 30
    assert summary_cell(out, "M", "n_eligible") is None
    assert summary_cell(out, "F", "n_eligible") is None
    assert summary_cell(out, "F", "rate") is None
    assert summary_cell(out, "F", "suppressed")
    assert not summary_cell(out, "all", "suppressed")
    # all 18 imaged were 2024 women: events all 18, F 18 -> M 0 may show
    assert summary_cell(out, "all", "n_events") == 18
    assert summary_cell(out, "all", "rate") == pytest.approx(18 / 30)
    assert not list(tmp_path.glob(".extract.*"))


@pytest.mark.slow
def test_lower_k_shows_the_small_cell_and_reexport_replaces(published: Path, tmp_path: Path):
    out = tmp_path / "extract"
    assert redflags("export", "--out", str(out), "-w", str(published)).returncode == 0
    result = redflags(
        "export",
        "--out",
        str(out),
        "-w",
        str(published),
        "--min-cell",
        "5",
        "--tables",
        "cohort_summary",
    )
    assert result.returncode == 0, result.stderr
    assert summary_cell(out, "M", "n_eligible") == 5
    assert json.loads((out / "manifest.json").read_text())["suppression"]["min_cell"] == 5
    assert sorted(p.name for p in out.iterdir()) == ["cohort_summary.parquet", "manifest.json"]


@pytest.mark.slow
def test_failed_exports_leave_nothing(published: Path, tmp_path: Path):
    out = tmp_path / "extract"
    result = redflags("export", "--out", str(out), "-w", str(published), "--tables", "care_gaps")
    assert result.returncode == 2
    assert "care_gaps: not exported" in result.stderr
    assert "Traceback" not in result.stderr
    # no warehouse at all: nothing is created beside --out either
    result = redflags("export", "--out", str(out), "-w", str(tmp_path / "none.duckdb"))
    assert result.returncode == 1
    assert "no warehouse here" in result.stderr
    assert list(tmp_path.iterdir()) == []
    # a warehouse whose marts were never published fails after the export has begun
    con = warehouse(tmp_path, [presentation("E1", "A", 0)])
    con.close()
    result = redflags("export", "--out", str(out), "-w", str(tmp_path / "w.duckdb"))
    assert result.returncode == 1
    assert "no published marts" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"]
    # a directory that is not an earlier export is never overwritten
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    result = redflags("export", "--out", str(other), "-w", str(published))
    assert result.returncode == 2
    assert (other / "notes.txt").read_text() == "keep"


@pytest.mark.slow
def test_record_level_files_do_not_depend_on_the_marts_row_order(published: Path, tmp_path: Path):
    reversed_warehouse = tmp_path / "reversed.duckdb"
    shutil.copy(published, reversed_warehouse)
    con = duckdb.connect(str(reversed_warehouse))
    con.execute(
        "CREATE OR REPLACE TABLE marts.index_presentations AS "
        "SELECT * FROM marts.index_presentations ORDER BY encounter_id DESC"
    )
    first = con.execute("SELECT encounter_id FROM marts.index_presentations LIMIT 1").fetchone()
    con.close()
    assert first == ("E29",)  # the mart's rows now run backwards
    tables = ("index_presentations",)
    export(published, tmp_path / "a", tables=tables)
    export(reversed_warehouse, tmp_path / "b", tables=tables)
    parts = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.parquet"))
    assert [str(p) for p in parts] == [
        "index_presentations/index_year=2023/part-0.parquet",
        "index_presentations/index_year=2024/part-0.parquet",
    ]
    for part in parts:
        assert (tmp_path / "a" / part).read_bytes() == (tmp_path / "b" / part).read_bytes()
    # by patient, then index date: P00..P11 indexed in 2023, P12..P29 in 2024
    ids = pd.read_parquet(tmp_path / "b" / parts[1])["patient_id"].tolist()
    assert ids == [f"P{i:02d}" for i in range(12, 30)]
