"""The published copy: what it holds, how it is swapped in, and that readers open only it.

Runs go through the console in subprocesses where the point is another process: a
connection held in this process must not see this process's own run (DuckDB shares
one database per file path within a process), and the writer lock is per process.
"""

from __future__ import annotations

import errno
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import pipelines.published
from pipelines.errors import UserError
from pipelines.published import connect_for_analysts, published_path, write_copy
from tests.support.cohorts import built, presentation, referral
from tests.support.orchestration import (
    INTAKE_A,
    INTAKE_B,
    REFERRALS_A,
    REFERRALS_B,
    lock_held,
    subprocess_env,
    write_inputs,
)

# Patient A presents on days 0 and 100 (the second within A's 180-day washout, so not an
# index), patient B on day 3; A is imaged on day 2. Two index presentations: E1 imaged
# after 2 days, E2 not imaged.
PRESENTATIONS = [
    presentation("E1", "A", 0),
    presentation("E2", "B", 3),
    presentation("E3", "A", 100),
]
REFERRALS = [referral("R1", "A", 2)]


def rows(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def run_console(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
    )


def test_the_copy_is_named_after_the_warehouse_beside_it():
    assert published_path("data/warehouse.duckdb") == Path("data/warehouse.published.duckdb")
    assert published_path("/srv/site/w") == Path("/srv/site/w.published.duckdb")


def test_the_copy_holds_the_marts_release_and_ops_and_nothing_per_row(tmp_path: Path):
    con = built(tmp_path, PRESENTATIONS, REFERRALS)
    try:
        # a view an analyst's site added to the marts goes with them
        con.execute(
            "CREATE VIEW marts.imaged AS SELECT encounter_id FROM marts.index_presentations "
            "WHERE days_to_imaging_any IS NOT NULL"
        )
        con.execute("COMMENT ON VIEW marts.imaged IS 'Index presentations imaged.'")
        copy = write_copy(con, tmp_path / "w.duckdb")
        warehouse_counts = dict(
            con.execute(
                "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables() "
                "WHERE schema_name IN ('marts', 'release', 'ops') "
                "AND NOT starts_with(table_name, '_build_')"
            ).fetchall()
        )
    finally:
        con.close()
    assert copy == tmp_path / "w.published.duckdb"
    # Written in place: nothing else is left in the directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb", "w.published.duckdb"]
    assert stat.S_IMODE(copy.stat().st_mode) & 0o222 == 0  # no one may open it to write
    tables = rows(copy, "SELECT schema_name || '.' || table_name FROM duckdb_tables() ORDER BY 1")
    names = [name for (name,) in tables]
    assert {name.split(".")[0] for name in names} == {"marts", "release", "ops"}
    assert set(names) == set(warehouse_counts) | {"ops.publication"}
    for name in warehouse_counts:
        assert rows(copy, f"SELECT count(*) FROM {name}") == rows(
            tmp_path / "w.duckdb", f"SELECT count(*) FROM {name}"
        ), name
    assert rows(
        copy, "SELECT encounter_id, days_to_imaging_any FROM marts.index_presentations ORDER BY 1"
    ) == [("E1", 2), ("E2", None)]
    # the release's run names the publication; 3 validated presentations in staging.intake
    assert rows(copy, "SELECT run_id, warehouse, n_presentations FROM ops.publication") == [
        ("test-run", str(tmp_path / "w.duckdb"), 3)
    ]
    assert rows(copy, "SELECT * FROM marts.imaged") == [("E1",)]
    assert rows(copy, "SELECT comment FROM duckdb_views() WHERE view_name = 'imaged'") == [
        ("Index presentations imaged.",)
    ]
    # the marts' documentation travels with them
    assert rows(
        copy,
        "SELECT comment FROM duckdb_columns() WHERE schema_name = 'marts' "
        "AND table_name = 'care_gaps' AND column_name = 'encounter_id'",
    ) == [("The index encounter of the episode.",)]


def test_a_failed_copy_leaves_the_previous_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    con = built(tmp_path, PRESENTATIONS, REFERRALS)
    try:
        write_copy(con, tmp_path / "w.duckdb", "first")
        # what a run killed while writing its copy would have left
        left = tmp_path / ".w.published.duckdb.0badc0de.tmp"
        left.write_bytes(b"half a database")
        Path(f"{left}.wal").write_bytes(b"its log")
        copied: list[str] = []
        copy_table = pipelines.published._copy_table

        def disk_fills_on_the_third_table(source, copy, schema, table, *rest):
            if len(copied) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            copied.append(f"{schema}.{table}")
            copy_table(source, copy, schema, table, *rest)

        monkeypatch.setattr(pipelines.published, "_copy_table", disk_fills_on_the_third_table)
        with pytest.raises(OSError, match="No space left"):
            write_copy(con, tmp_path / "w.duckdb", "second")
        assert len(copied) == 2
        # neither the stale temporary files nor this attempt's are left
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
        assert rows(tmp_path / "w.published.duckdb", "SELECT run_id FROM ops.publication") == [
            ("first",)
        ]
        monkeypatch.undo()
        write_copy(con, tmp_path / "w.duckdb", "second")
    finally:
        con.close()
    assert rows(tmp_path / "w.published.duckdb", "SELECT run_id FROM ops.publication") == [
        ("second",)
    ]


def test_readers_open_the_copy_read_only_and_say_when_there_is_none(tmp_path: Path):
    con = built(tmp_path, PRESENTATIONS, REFERRALS)
    con.close()
    with pytest.raises(UserError) as none_yet:
        connect_for_analysts(tmp_path / "w.duckdb")
    assert str(none_yet.value) == (
        f"{tmp_path / 'w.published.duckdb'}: no published copy of w.duckdb yet; "
        "`redflags run` publishes one"
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_copy(con, tmp_path / "w.duckdb")
    con.close()
    with pytest.raises(UserError, match="w.published.duckdb: a published copy; pass the "):
        connect_for_analysts(tmp_path / "w.published.duckdb")
    reader = connect_for_analysts(tmp_path / "w.duckdb")
    try:
        with pytest.raises(duckdb.InvalidInputException, match="read-only"):
            reader.execute("DELETE FROM marts.care_gaps")
        with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
            reader.execute(f"ATTACH '{tmp_path / 'w.duckdb'}' AS warehouse")
    finally:
        reader.close()


@pytest.mark.slow
def test_query_report_and_export_never_open_the_warehouse(tmp_path: Path):
    """A second run holding the warehouse for writing does not stop any reader: they
    would fail at once if they opened it (DuckDB refuses a file another process writes)."""
    con = built(tmp_path, PRESENTATIONS, REFERRALS)
    write_copy(con, tmp_path / "w.duckdb")
    con.close()
    warehouse = str(tmp_path / "w.duckdb")
    with lock_held(tmp_path / "w.duckdb", read_only=False):
        query = run_console(
            "query",
            "SELECT encounter_id, days_to_imaging_any FROM marts.index_presentations ORDER BY 1",
            "-w",
            warehouse,
            "-f",
            "csv",
        )
        report = run_console("report", "-w", warehouse, "-o", str(tmp_path / "r.html"))
        export = run_console("export", "-w", warehouse, "-o", str(tmp_path / "ex"))
    assert query.returncode == 0, query.stderr
    assert query.stdout == "encounter_id,days_to_imaging_any\nE1,2\nE2,\n"
    assert report.returncode == 0, report.stderr
    assert "Run:</dt><dd>test-run</dd>" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert export.returncode == 0, export.stderr
    assert export.stdout.startswith(f"export of run test-run -> {tmp_path / 'ex'} (k = 11)")


@pytest.mark.slow
def test_a_held_connection_to_the_copy_neither_stops_a_run_nor_sees_it_change(tmp_path: Path):
    inputs = write_inputs(tmp_path / "in", {"intake_a.csv": INTAKE_A, "referrals.csv": REFERRALS_A})
    warehouse = tmp_path / "w.duckdb"
    run = ("run", "-i", str(inputs), "-w", str(warehouse), "--lock-timeout", "5")
    first = run_console(*run, timeout=300)
    assert first.returncode == 0, first.stderr
    copy = published_path(warehouse)
    count = (
        "SELECT (SELECT count(*) FROM ops.run_log), (SELECT n_presentations FROM ops.publication), "
        "(SELECT count(*) FROM marts.index_presentations)"
    )
    # An analyst's notebook: open read-only, and left open across the next run.
    analyst = duckdb.connect(str(copy), read_only=True)
    try:
        (first_run,) = analyst.execute("SELECT run_id FROM ops.publication").fetchone()
        # INTAKE_A: 3 presentations; E1 (P1) is an index, E3 (P1, 62 days later) is in
        # its washout, E2 is a cough.
        assert analyst.execute(count).fetchall() == [(1, 3, 1)]

        write_inputs(inputs, {"intake_b.csv": INTAKE_B, "referrals_b.csv": REFERRALS_B})
        second = run_console(*run, timeout=300)
        assert second.returncode == 0, second.stderr
        assert "warehouse busy" not in second.stderr  # it never waited for the lock
        # the held connection still reads the publication it opened, whole
        assert analyst.execute("SELECT run_id FROM ops.publication").fetchall() == [(first_run,)]
        assert analyst.execute(count).fetchall() == [(1, 3, 1)]
        # ... while a new connection (another process) sees the new run: + E4, E5; E4 (P3)
        # is a new index, E5 has no complaint
        fresh = run_console("query", count, "-w", str(warehouse), "-f", "csv")
        assert fresh.returncode == 0, fresh.stderr
        assert fresh.stdout.splitlines()[1] == "2,5,2"

        # A rebuild publishes the same way (its history starts again: one run logged).
        rebuild = run_console(*run, "--rebuild", timeout=300)
        assert rebuild.returncode == 0, rebuild.stderr
        assert analyst.execute(count).fetchall() == [(1, 3, 1)]
    finally:
        analyst.close()
    assert rows(copy, count) == [(1, 5, 2)]
    assert rows(copy, "SELECT warehouse FROM ops.publication") == [(str(warehouse),)]
    assert sorted(p.name for p in tmp_path.iterdir() if "published" in p.name) == [
        "w.published.duckdb"
    ]
