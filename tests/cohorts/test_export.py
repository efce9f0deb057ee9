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
from pipelines.cohorts.export import RECORD_LEVEL, export
from pipelines.published import write_copy
from tests.support.cohorts import presentation, referral, warehouse


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """31 index presentations: 26 F, 5 M; 12 in 2023, 19 in 2024; data end 2024-07-19.

    E00..E11 index on 2023-06-15 (followed up 400 days), E12..E29 on 2024-01-01 (200
    days), E30 on 2024-05-30 (50 days: followed up for the 1-, 14- and 28-day windows
    only). P12..P29 are imaged 3 days after their index; P00 150 days after its own,
    beyond the longest window (90 days).
    """
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
    rows.append(presentation("E30", "P30", 150))
    rows[0]["age_years"] = 97  # above the cap the contract should have applied
    rows.append(presentation("LATE", "Z", 200, back_pain=False, tier="not_back_pain"))
    refs = [referral(f"R{i:02d}", f"P{i:02d}", 3) for i in range(12, 30)]
    refs.append(referral("R_LATE", "P00", -50))
    con = warehouse(tmp, rows, refs)
    build_cohorts(con)
    publish_marts(con, "run-x")
    write_copy(con, tmp / "w.duckdb")
    con.close()
    return tmp / "w.duckdb"


def redflags(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, timeout=120
    )


def summary_cell(directory: Path, stratum_value: str, column: str, window: int = 28):
    frame = pd.read_parquet(directory / "cohort_summary.parquet")
    row = frame[
        (frame["stratum_value"] == stratum_value)
        & (frame["window_days"] == window)
        & (frame["outcome"] == "imaging_any")
    ]
    assert len(row) == 1
    value = row[column].iloc[0]
    return None if pd.isna(value) else value


AGGREGATES = [
    "cohort_summary",
    "time_to_referral",
    "imaging_overuse",
    "rule_performance",
    "documentation_quality",
    "index_tier_mix",
    "care_gap_counts",
]


@pytest.mark.slow
def test_default_export_is_the_audited_aggregates_only(published: Path, tmp_path: Path):
    out = tmp_path / "extract"
    result = redflags("export", "--out", str(out), "-w", str(published))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_id"] == "run-x"
    assert manifest["rules_version"] == "test-rules"
    assert manifest["suppression"]["min_cell"] == 11
    assert manifest["tables"] == AGGREGATES
    assert not (out / "index_presentations").exists()
    assert "record_level" not in manifest
    # the data end only as a month, nowhere as a date
    assert manifest["data_end_month"] == "2024-07"
    assert "2024-07-19" not in (out / "manifest.json").read_text()
    audit = manifest["audit"]
    assert audit["min_cell"] == 11
    for item in manifest["files"]:
        path = out / item["path"]
        assert pq.read_metadata(path).num_rows == item["rows"]
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    # 31 index presentations are fewer than 5 k = 55: the release withholds every count
    assert audit["every_count_withheld"] is True
    for name in AGGREGATES:
        frame = pd.read_parquet(out / f"{name}.parquet")
        counts = [c for c in frame.columns if c.startswith("n") or c in ("tp", "fp", "fn", "tn")]
        assert counts and frame[counts].isna().all().all(), name
        assert frame["suppressed"].all(), name
    assert summary_cell(out, "all", "rate") is None
    assert not list(tmp_path.glob(".extract.*"))


@pytest.mark.slow
def test_record_level_is_a_limited_data_set_without_exact_times(published: Path, tmp_path: Path):
    out = tmp_path / "extract"
    result = redflags("export", "--out", str(out), "-w", str(published), "--record-level")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tables"] == [*AGGREGATES, "index_presentations"]
    assert "limited data set" in manifest["record_level"]["release_tier"]
    by_year = {
        f["path"].split("/")[1]: f["rows"]
        for f in manifest["files"]
        if f["table"] == "index_presentations"
    }
    assert by_year == {"index_year=2023": 12, "index_year=2024": 19}
    records = pd.read_parquet(out / "index_presentations").set_index("encounter_id")
    assert len(records) == 31
    for column in ("index_date", "followup_days", "chief_complaint"):
        assert column not in records.columns
    assert not any(
        str(t).startswith(("date", "timestamp"))
        for t in manifest["schema"]["index_presentations"].values()
    )
    assert sorted(records["index_year_month"].unique()) == ["2023-06", "2024-01", "2024-05"]
    assert records["age_years"].max() == 90
    # follow-up as a flag per window: E30 has 50 days
    flags = ["followed_up_1d", "followed_up_14d", "followed_up_28d", "followed_up_90d"]
    assert records.loc["E30", flags].tolist() == [True, True, True, False]
    assert records.loc["E12", flags].tolist() == [True, True, True, True]
    # days to an event only within the longest window: P00's 150 days is dropped
    assert records.loc["E12", "days_to_imaging_any"] == 3
    assert pd.isna(records.loc["E00", "days_to_imaging_any"])


@pytest.mark.slow
def test_export_writes_only_where_it_may_and_replaces_only_an_export(
    published: Path, tmp_path: Path
):
    out = tmp_path / "extract"
    assert redflags("export", "--out", str(out), "-w", str(published)).returncode == 0
    # a second export into the same place needs --replace
    again = redflags("export", "--out", str(out), "-w", str(published), "-t", "cohort_summary")
    assert again.returncode == 2
    assert "not empty" in again.stderr and "--replace" in again.stderr
    result = redflags(
        "export", "--out", str(out), "-w", str(published), "-t", "cohort_summary", "--replace"
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["cohort_summary.parquet", "manifest.json"]
    # a file the export did not write stops --replace, and stays
    (out / "notes.txt").write_text("mine")
    result = redflags("export", "--out", str(out), "-w", str(published), "--replace")
    assert result.returncode == 2
    assert "notes.txt" in result.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "cohort_summary.parquet").exists()
    # a directory with someone else's manifest.json is not an export
    other = tmp_path / "project"
    other.mkdir()
    (other / "manifest.json").write_text('{"name": "my project"}')
    (other / "data.csv").write_text("keep")
    result = redflags("export", "--out", str(other), "-w", str(published), "--replace")
    assert result.returncode == 2
    assert "no export manifest" in result.stderr
    assert sorted(p.name for p in other.iterdir()) == ["data.csv", "manifest.json"]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_failed_exports_leave_nothing(published: Path, tmp_path: Path):
    out = tmp_path / "extract"
    result = redflags("export", "--out", str(out), "-w", str(published), "--tables", "care_gaps")
    assert result.returncode == 2
    assert "care_gaps: not in the release" in result.stderr
    assert "Traceback" not in result.stderr
    result = redflags("export", "--out", str(out), "-w", str(published), "-t", RECORD_LEVEL)
    assert result.returncode == 2
    assert "--record-level" in result.stderr
    # no warehouse at all: nothing is created beside --out either
    result = redflags("export", "--out", str(out), "-w", str(tmp_path / "none.duckdb"))
    assert result.returncode == 1
    assert "no warehouse here" in result.stderr
    assert list(tmp_path.iterdir()) == []
    # a warehouse without a published copy (made before there were copies) says how
    # to get one, and is not opened
    con = warehouse(tmp_path, [presentation("E1", "A", 0)])
    con.close()
    result = redflags("export", "--out", str(out), "-w", str(tmp_path / "w.duckdb"))
    assert result.returncode == 1
    assert result.stderr == (
        f"redflags: error: {tmp_path / 'w.published.duckdb'}: no published copy of w.duckdb "
        "yet; `redflags run` publishes one\n"
    )
    # a copy of a warehouse whose marts were never published fails after the export began
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_copy(con, tmp_path / "w.duckdb")
    con.close()
    result = redflags("export", "--out", str(out), "-w", str(tmp_path / "w.duckdb"))
    assert result.returncode == 1
    assert "no release" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb", "w.published.duckdb"]


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
    write_copy(con, reversed_warehouse)
    con.close()
    assert first == ("E30",)  # the mart's rows now run backwards
    export(published, tmp_path / "a", tables=(), record_level=True)
    export(reversed_warehouse, tmp_path / "b", tables=(), record_level=True)
    parts = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.parquet"))
    assert [str(p) for p in parts] == [
        "index_presentations/index_year=2023/part-0.parquet",
        "index_presentations/index_year=2024/part-0.parquet",
    ]
    for part in parts:
        assert (tmp_path / "a" / part).read_bytes() == (tmp_path / "b" / part).read_bytes()
    # by patient, then index date: P00..P11 indexed in 2023, P12..P29 in 2024
    ids = pd.read_parquet(tmp_path / "b" / parts[1])["patient_id"].tolist()
    assert ids == [*(f"P{i:02d}" for i in range(12, 30)), "P30"]
