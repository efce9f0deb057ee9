"""The flow when its input is hostile or its environment fails: a full disk, a damaged
warehouse. Each fault ends in one line that says what to do, and loses nothing published."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.support.orchestration import INTAKE_A, REFERRALS_A, write_inputs

pytestmark = pytest.mark.slow

RunFlow = Callable[..., dict[str, Any]]

# A column name and a file name written as SQL: spliced into SQL text, they would read
# /etc/passwd into the warehouse or write a file into the working directory.
HOSTILE_COLUMN = "x' || (select content from read_text('/etc/passwd')) || '"
HOSTILE_FILE = "intake_'); COPY (SELECT 42) TO 'pwned.csv'; SELECT ('.csv"


def fetch(warehouse: Path, *queries: str) -> list[list[tuple]]:
    """The rows of each query, read-only."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return [con.execute(sql).fetchall() for sql in queries]
    finally:
        con.close()


def hostile_input(directory: Path) -> Path:
    lines = INTAKE_A.splitlines()
    rows = [f'{lines[0]},"{HOSTILE_COLUMN}"'] + [f"{line},v" for line in lines[1:]]
    return write_inputs(
        directory, {HOSTILE_FILE: "\n".join(rows) + "\n", "referrals.csv": REFERRALS_A}
    )


def test_the_writer_cannot_read_files_after_a_hostile_ingest(
    tmp_path: Path, run_flow: RunFlow, monkeypatch: pytest.MonkeyPatch
):
    import pipelines.flows.run as run_module

    monkeypatch.chdir(tmp_path)
    inputs = hostile_input(tmp_path / "in")
    refused: list[str] = []
    headline_numbers = run_module.headline_numbers

    def probe(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        # The run's connection, after ingest, scoring and publishing: no file reads.
        try:
            con.execute("SELECT content FROM read_text('/etc/passwd')").fetchall()
        except duckdb.PermissionException as exc:
            refused.append(str(exc).splitlines()[0])
        return headline_numbers(con)

    monkeypatch.setattr(run_module, "headline_numbers", probe)
    warehouse = tmp_path / "w.duckdb"
    result = run_flow(inputs, warehouse)
    assert refused == [
        'Permission Error: Cannot access file "/etc/passwd" - file system operations are '
        "disabled by configuration"
    ]
    assert result["raw"] == {"intake": 3, "referrals": 2, "diagnoses": 0, "patients": 0}
    assert not (tmp_path / "pwned.csv").exists()
    files, rows = fetch(
        warehouse,
        "SELECT DISTINCT source_file FROM raw.intake",
        "SELECT concat_ws('|', *COLUMNS(*)) FROM raw.intake",
    )
    assert files == [(str(inputs.resolve() / HOSTILE_FILE),)]
    assert rows and all("root:" not in (text or "") for (text,) in rows)


# ---------------------------------------------------------------- a full disk


def published_marts(warehouse: Path) -> list[list[tuple]]:
    """Runs that published, and the published cohort summary: to see a publication survive."""
    return fetch(
        warehouse,
        "SELECT count(*) FROM ops.run_log WHERE status = 'published'",
        "SELECT * FROM marts.cohort_summary ORDER BY ALL",
    )


def fill_the_disk_while_preparing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Prepares write 1 MB into the run's work directory, then the disk is full."""
    from pipelines.ingest import stage

    calls: list[str] = []

    def prepare_file(table: str, path: str, work_dir: str, **options: Any):
        calls.append(Path(path).name)
        part = Path(work_dir) / Path(path).name / "raw.arrows"
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(b"\0" * 1_000_000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(part))

    monkeypatch.setattr(stage, "prepare_file", prepare_file)
    return calls


def test_a_full_disk_while_preparing_is_one_line_no_retry_and_no_work_left(
    tmp_path: Path, run_flow: RunFlow, monkeypatch: pytest.MonkeyPatch
):
    from pipelines.errors import UserError
    from pipelines.ingest.load import work_root

    inputs = write_inputs(tmp_path / "in", {"intake.csv": INTAKE_A, "referrals.csv": REFERRALS_A})
    warehouse = tmp_path / "w.duckdb"
    run_flow(inputs, warehouse)
    before = published_marts(warehouse)
    (inputs / "intake.csv").write_text(INTAKE_A + "E9,P9,2024-06-01,40,F,back pain\n")

    calls = fill_the_disk_while_preparing(monkeypatch)
    with pytest.raises(UserError) as failed:
        run_flow(inputs, warehouse)
    work = work_root(warehouse) / ""
    assert str(failed.value).startswith(f"disk full while writing {work}")
    assert str(failed.value).endswith(": free space and rerun")
    assert "\n" not in str(failed.value)
    # Each file was tried once: a full disk is not retried.
    assert sorted(calls) == ["intake.csv", "referrals.csv"]
    assert not work_root(warehouse).exists()
    assert published_marts(warehouse) == before


def test_a_full_disk_in_the_warehouse_is_one_line_and_not_retried(
    tmp_path: Path, run_flow: RunFlow, monkeypatch: pytest.MonkeyPatch
):
    from pipelines.errors import UserError
    from pipelines.ingest import stage
    from pipelines.ingest.load import work_root

    inputs = write_inputs(tmp_path / "in", {"intake.csv": INTAKE_A, "referrals.csv": REFERRALS_A})
    warehouse = tmp_path / "w.duckdb"
    loads: list[str] = []

    def load_file(con: duckdb.DuckDBPyConnection, prepared: Any, run_id: str):
        loads.append(Path(prepared.report.path).name)
        raise duckdb.IOException(
            f'IO Error: Could not write file "{warehouse}": No space left on device'
        )

    monkeypatch.setattr(stage, "load_file", load_file)
    with pytest.raises(UserError, match="disk full") as failed:
        run_flow(inputs, warehouse)
    assert str(failed.value) == (
        f"disk full while writing {warehouse.resolve()}: free space and rerun"
    )
    assert loads == ["intake.csv"]
    assert not work_root(warehouse).exists()


def test_a_full_disk_prints_one_line_on_the_console(tmp_path: Path):
    """The console of `redflags run`: the message, no traceback, no retry."""
    from pipelines.ingest.load import work_root

    inputs = write_inputs(tmp_path / "in", {"intake.csv": INTAKE_A})
    warehouse = tmp_path / "w.duckdb"
    script = (
        "import errno, os, sys\n"
        "from pipelines.ingest import stage\n"
        "def full(*args, **kwargs):\n"
        "    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "stage.prepare_file = full\n"
        "from pipelines.cli import main\n"
        "sys.argv = ['redflags', 'run', '-i', sys.argv[1], '-w', sys.argv[2]]\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(inputs), str(warehouse)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    # The work directory of the run: its run id is the run's own.
    message = re.compile(
        rf"redflags: error: disk full while writing {re.escape(str(work_root(warehouse)))}/"
        r"\S+: free space and rerun"
    )
    assert len(errors) == 1 and message.fullmatch(errors[0]), result.stderr
    assert "Traceback" not in result.stderr
    assert "Retrying" not in result.stderr + result.stdout
    assert not work_root(warehouse).exists()


# ---------------------------------------------------------------- a damaged warehouse


def damage_a_block_of(warehouse: Path, table: str) -> None:
    """Overwrite 64 bytes where `table`'s first column segment is stored on disk."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        block_size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
        block_id, offset = con.execute(
            "SELECT block_id, block_offset FROM pragma_storage_info(?) WHERE block_id >= 0 "
            "ORDER BY row_group_id, column_id LIMIT 1",
            [table],
        ).fetchone()
    finally:
        con.close()
    # The file opens with three 4 KiB headers; each block starts with its checksum.
    where = 3 * 4096 + block_id * block_size + 8 + offset
    with warehouse.open("r+b") as file:
        file.seek(where)
        file.write(b"\xff" * 64)


def test_a_damaged_warehouse_is_refused_before_writing_and_rebuilt_on_request(
    tmp_path: Path, run_flow: RunFlow
):
    from pipelines.errors import UserError

    inputs = write_inputs(tmp_path / "in", {"intake.csv": INTAKE_A, "referrals.csv": REFERRALS_A})
    warehouse = tmp_path / "w.duckdb"
    run_flow(inputs, warehouse)
    damage_a_block_of(warehouse, "raw.intake")
    damaged_bytes = warehouse.read_bytes()

    with pytest.raises(UserError) as refused:
        run_flow(inputs, warehouse)
    message = str(refused.value)
    assert message.startswith(f"{warehouse}: the warehouse file is damaged (Corrupt database file")
    assert message.endswith(
        "nothing was written. Rebuild it from the input with `redflags run --rebuild` "
        "(the damaged file is kept as w.duckdb.damaged)."
    )
    assert "\n" not in message
    assert warehouse.read_bytes() == damaged_bytes

    result = run_flow(inputs, warehouse, rebuild=True)
    assert result["rebuilt"] == {"damaged_kept_as": f"{warehouse}.damaged"}
    assert (tmp_path / "w.duckdb.damaged").read_bytes() == damaged_bytes
    assert not (tmp_path / "w.duckdb.rebuild").exists()
    rows, runs = fetch(
        warehouse,
        "SELECT encounter_id FROM raw.intake ORDER BY 1",
        "SELECT run_id, status FROM ops.run_log",
    )
    assert rows == [("E1",), ("E2",), ("E3",)]
    assert runs == [(result["run_id"], "published")]
    # The rebuilt file is sound: the next run reads it whole and finds nothing to load.
    again = run_flow(inputs, warehouse)
    assert {f.status for f in again["ingest"].files} == {"unchanged"}
