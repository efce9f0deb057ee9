"""`redflags query` through the console: read-only, one-line errors, every output format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cohorts.build import build_cohorts, publish_marts
from pipelines.published import write_copy
from tests.support.cohorts import presentation, referral, warehouse


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("query")
    con = warehouse(
        tmp,
        [presentation("E1", "A", 0, tier="high"), presentation("E2", "B", 3)],
        [referral("R1", "A", 2)],
    )
    build_cohorts(con)
    publish_marts(con, "run-q")
    write_copy(con, tmp / "w.duckdb")
    con.close()
    return tmp / "w.duckdb"


def redflags(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


SQL = "SELECT encounter_id, index_tier, days_to_imaging_any FROM marts.index_presentations"


@pytest.mark.slow
def test_csv_and_json_to_stdout(published: Path):
    result = redflags("query", SQL + " ORDER BY 1", "-w", str(published), "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "encounter_id,index_tier,days_to_imaging_any",
        "E1,high,2",
        "E2,low,",
    ]
    result = redflags("query", SQL + " ORDER BY 1", "-w", str(published), "--format", "json")
    assert json.loads(result.stdout) == [
        {"encounter_id": "E1", "index_tier": "high", "days_to_imaging_any": 2},
        {"encounter_id": "E2", "index_tier": "low", "days_to_imaging_any": None},
    ]


@pytest.mark.slow
def test_table_and_parquet(published: Path, tmp_path: Path):
    result = redflags("query", SQL + " ORDER BY 1", "-w", str(published))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "encounter_id",
        "index_tier",
        "days_to_imaging_any",
        "E1",
        "high",
        "2",
        "E2",
        "low",
        "<NA>",
    ]
    out = tmp_path / "r.parquet"
    result = redflags("query", SQL, "-w", str(published), "--format", "parquet", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert pq.read_table(out).num_rows == 2
    assert pq.ParquetFile(out).metadata.row_group(0).column(0).compression == "ZSTD"


# Years Python's datetime cannot hold: DuckDB writes them, so the output is DuckDB's text.
OUT_OF_RANGE = (
    "SELECT DATE '-2024-01-01' AS d, DATE '9999-12-31' + INTERVAL 1 DAY AS t, "
    "[DATE '0000-01-01'] AS l, 7 AS n"
)


@pytest.mark.slow
def test_dates_outside_pythons_range_are_printed_not_a_traceback(published: Path):
    csv = redflags("query", OUT_OF_RANGE, "-w", str(published), "--format", "csv")
    assert csv.returncode == 0, csv.stderr
    # Year -2024 is 2025 BC (there is a year 0); 9999-12-31 plus a day is year 10000.
    assert csv.stdout.splitlines() == [
        "d,t,l,n",
        "2025-01-01 (BC),10000-01-01 00:00:00,['0001-01-01 (BC)'],7",
    ]
    json_out = redflags("query", OUT_OF_RANGE, "-w", str(published), "--format", "json")
    assert json_out.returncode == 0, json_out.stderr
    assert json.loads(json_out.stdout) == [
        {
            "d": "2025-01-01 (BC)",
            "t": "10000-01-01 00:00:00",
            "l": "['0001-01-01 (BC)']",
            "n": 7,
        }
    ]
    table = redflags("query", OUT_OF_RANGE, "-w", str(published))
    assert table.returncode == 0, table.stderr
    assert "Traceback" not in table.stderr
    assert table.stdout.splitlines()[1].split() == [
        "2025-01-01", "(BC)", "10000-01-01", "00:00:00", "['0001-01-01", "(BC)']", "7"
    ]  # fmt: skip
    # Columns are cast by position: two columns of one name keep their own values.
    twins = redflags(
        "query", "SELECT 1 AS a, DATE '2020-01-01' AS a", "-w", str(published), "-f", "csv"
    )
    assert twins.stdout.splitlines() == ["a,a", "1,2020-01-01"]


WRITES = [
    "CREATE TABLE marts.x AS SELECT 1",
    "DELETE FROM marts.care_gaps",
    "DROP TABLE marts.cohort_summary",
    "COPY marts.index_presentations TO '{leak}'",
]


@pytest.mark.slow
def test_writes_are_refused_in_one_line(published: Path, tmp_path: Path):
    leak = tmp_path / "leak.csv"
    for statement in WRITES:
        result = redflags("query", statement.format(leak=leak), "-w", str(published))
        assert result.returncode == 1, statement
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, statement
        assert lines[0].startswith("redflags: error: redflags query is read-only"), statement
    assert not leak.exists()
    # nothing changed: the summary is still there, with its rows
    check = redflags(
        "query",
        "SELECT count(*) AS n FROM marts.cohort_summary",
        "-w",
        str(published),
        "--format",
        "csv",
    )
    assert check.returncode == 0 and int(check.stdout.splitlines()[1]) > 0


@pytest.mark.slow
def test_sql_error_is_one_line(published: Path):
    result = redflags("query", "SELECT nope FROM marts.index_presentations", "-w", str(published))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("redflags: error: SQL error: Binder Error:")
    assert "nope" in lines[0]


@pytest.mark.slow
def test_missing_warehouse_and_bad_format(tmp_path: Path, published: Path):
    result = redflags("query", "SELECT 1", "-w", str(tmp_path / "none.duckdb"))
    assert result.returncode == 1
    assert "no warehouse here" in result.stderr
    assert not (tmp_path / "none.duckdb").exists()
    result = redflags("query", "SELECT 1", "-w", str(published), "--format", "parquet")
    assert result.returncode == 2
    assert "add --out FILE" in result.stderr


@pytest.mark.slow
def test_long_output_through_a_pipe_is_whole_and_the_exit_status_kept(published: Path):
    # The console leaves without tearing the interpreter down (os._exit); what it
    # printed must still reach a pipe in full, and its status the caller.
    sql = "SELECT i, repeat('x', 50) AS pad FROM range(200000) t(i) ORDER BY i"
    result = redflags("query", sql, "-w", str(published), "--format", "csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 200_001
    assert lines[1] == "0," + "x" * 50 and lines[-1] == "199999," + "x" * 50
    refused = redflags("query", "DROP TABLE marts.care_gaps", "-w", str(published))
    assert refused.returncode != 0 and refused.stderr.startswith("redflags: error:")


@pytest.mark.slow
def test_csv_holds_no_spreadsheet_formula(published: Path):
    sql = (
        "SELECT '=cmd|'' /C calc''!A0' AS id, '@SUM(1+1)' AS t, -5 AS n, '-5' AS s, "
        "'-ve SLR' AS c, 'E1' AS \"=h\""
    )
    result = redflags("query", sql, "-w", str(published), "--format", "csv")
    assert result.returncode == 0, result.stderr
    # Formulas are quoted; numbers, as numbers or as text, keep their sign.
    assert result.stdout.splitlines() == [
        "id,t,n,s,c,'=h",
        "'=cmd|' /C calc'!A0,'@SUM(1+1),-5,-5,'-ve SLR,E1",
    ]
