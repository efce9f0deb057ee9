"""Shared helpers for the orchestration tests: inputs, warehouse comparison, lock holders.

Starting Prefect costs seconds per process here, so the tests run flows in the pytest
process where they can (one ephemeral Prefect per session) and start subprocesses only
where a separate process is the point (a second writer, a killed run, a server).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from tests.support import ROOT

COMPARED_SCHEMAS: tuple[str, ...] = ("raw", "quarantine", "staging", "features", "marts")
# Columns that say which run wrote a row, not what the row is.
RUN_COLUMNS: frozenset[str] = frozenset({"run_id", "loaded_at", "published_at"})

INTAKE_A = """encounter_id,patient_id,encounter_date,age_years,sex,chief_complaint
E1,P1,2024-01-02,55,F,"back pain, denies weight loss"
E2,P2,2024-02-03,33,M,cough
E3,P1,2024-03-04,55,F,low back pain
"""
INTAKE_B = """encounter_id,patient_id,encounter_date,age_years,sex,chief_complaint
E4,P3,2024-04-05,71,M,thoracic back pain at night
E5,P4,2024-05-06,48,X,
"""
# Referrals name patients of the intake they come with (others would be quarantined).
REFERRALS_A = """referral_id,patient_id,referral_date,referral_type
R1,P1,2024-01-05,imaging
R2,P2,2024-02-10,biopsy
"""
REFERRALS_B = """referral_id,patient_id,referral_date,referral_type
R3,P3,2024-04-09,imaging
"""


def write_inputs(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def write_big_intake(path: Path, rows: int) -> None:
    """A large, plain intake CSV (written by DuckDB in a second), for runs that take a while."""
    con = duckdb.connect()
    con.execute(
        f"""COPY (
            SELECT 'B' || i AS encounter_id, 'P' || (i % 5000) AS patient_id,
                   DATE '2024-01-01' + CAST(i % 300 AS INTEGER) AS encounter_date,
                   20 + i % 70 AS age_years, 'F' AS sex,
                   'back pain for ' || (i % 40) || ' days, denies fever' AS chief_complaint
            FROM range({rows}) t(i)
        ) TO '{path}' (HEADER)"""
    )
    con.close()


def differences(
    first: Path, second: Path, schemas: tuple[str, ...] = COMPARED_SCHEMAS
) -> dict[str, str]:
    """Tables of the data schemas whose rows differ between two warehouses (empty: equal).

    Rows are compared as multisets with EXCEPT ALL both ways, without the columns naming
    the run, inside DuckDB, so large tables compare fast.
    """
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{first}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{second}' AS b (READ_ONLY)")
        columns: dict[str, dict[str, list[str]]] = {}
        for db in ("a", "b"):
            rows = con.execute(
                "SELECT table_schema || '.' || table_name, column_name "
                "FROM information_schema.columns WHERE table_catalog = ? "
                "AND list_contains(?, table_schema) ORDER BY ordinal_position",
                [db, list(schemas)],
            ).fetchall()
            columns[db] = {}
            for table, column in rows:
                if column not in RUN_COLUMNS:
                    columns[db].setdefault(table, []).append(f'"{column}"')
        out: dict[str, str] = {}
        for table in sorted(set(columns["a"]) | set(columns["b"])):
            if columns["a"].get(table) != columns["b"].get(table):
                out[table] = "tables or columns differ"
                continue
            select = ", ".join(columns["a"][table])
            n = con.execute(
                f"SELECT (SELECT count(*) FROM (SELECT {select} FROM a.{table} "
                f"EXCEPT ALL SELECT {select} FROM b.{table})) + "
                f"(SELECT count(*) FROM (SELECT {select} FROM b.{table} "
                f"EXCEPT ALL SELECT {select} FROM a.{table}))"
            ).fetchone()[0]
            if n:
                out[table] = f"{n} rows differ"
        return out
    finally:
        con.close()


def copy_warehouse(source: Path, target: Path) -> Path:
    """A copy of a closed warehouse file (and its WAL, if any), to compare against later."""
    shutil.copyfile(source, target)
    wal = source.with_name(source.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, target.with_name(target.name + ".wal"))
    return target


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a `redflags` subprocess: this worktree's code, no stray settings.

    PREFECT_HOME stays the user's: a new one costs a database migration (tens of seconds
    on a busy machine) in every process that starts with it.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REDFLAGS_"))}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def redflags(
    *args: str, env: dict[str, str], cwd: Path | None = None, stderr: Any = subprocess.PIPE
) -> subprocess.Popen:
    """Start `redflags ARGS` (this worktree's code) in a session of its own.

    Its own session, so a test can end whatever it left behind (a killed run's temporary
    Prefect server lives on) with one killpg of that session.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def end_session(proc: subprocess.Popen) -> None:
    """Kill every process left in the session `proc` leads (after `proc` itself is gone)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def lock_held(warehouse: Path, *, read_only: bool) -> Iterator[subprocess.Popen]:
    """Another process (an analyst, another writer) holds the warehouse until the block ends.

    The holder opens the file, says so on stdout, and keeps it open until its stdin closes.
    """
    code = (
        "import duckdb, sys\n"
        f"con = duckdb.connect({str(warehouse)!r}, read_only={read_only})\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
        "con.close()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        release(holder)


def release(holder: subprocess.Popen) -> None:
    if holder.poll() is None:
        holder.stdin.close()
        holder.wait(timeout=30)
