"""The flow when its input is hostile or its environment fails: a full disk, a damaged
warehouse. Each fault ends in one line that says what to do, and loses nothing published."""

from __future__ import annotations

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
    assert result["raw"] == {"intake": 3, "referrals": 2, "diagnoses": 0}
    assert not (tmp_path / "pwned.csv").exists()
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        files = con.execute("SELECT DISTINCT source_file FROM raw.intake").fetchall()
        extras = con.execute("SELECT extra_columns FROM raw.intake").fetchall()
    finally:
        con.close()
    assert files == [(str(inputs.resolve() / HOSTILE_FILE),)]
    assert all("root:" not in (text or "") for (text,) in extras)
