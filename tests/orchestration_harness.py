"""Shared helpers for the orchestration tests: inputs, warehouse snapshots, lock holders.

Starting Prefect costs seconds per process here, so the tests run flows in the pytest
process where they can (one ephemeral Prefect per session) and start subprocesses only
where a separate process is the point (a second writer, a killed run, a server).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
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
REFERRALS_A = """referral_id,patient_id,referral_date,referral_type
R1,P1,2024-01-05,imaging
R2,P3,2024-04-09,biopsy
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
            SELECT 'E' || i AS encounter_id, 'P' || (i % 5000) AS patient_id,
                   DATE '2024-01-01' + CAST(i % 300 AS INTEGER) AS encounter_date,
                   20 + i % 70 AS age_years, 'F' AS sex,
                   'back pain for ' || (i % 40) || ' days, denies fever' AS chief_complaint
            FROM range({rows}) t(i)
        ) TO '{path}' (HEADER)"""
    )
    con.close()


def snapshot(warehouse: Path) -> dict[str, list[tuple]]:
    """Every table of the data schemas, rows sorted, without the columns naming the run."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE list_contains(?, table_schema) ORDER BY 1, 2",
            [list(COMPARED_SCHEMAS)],
        ).fetchall()
        out: dict[str, list[tuple]] = {}
        for schema, name in tables:
            columns = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                    [schema, name],
                ).fetchall()
                if c not in RUN_COLUMNS
            ]
            select = ", ".join(f'"{c}"' for c in columns)
            out[f"{schema}.{name}"] = con.execute(
                f'SELECT {select} FROM {schema}."{name}" ORDER BY ALL'
            ).fetchall()
        return out
    finally:
        con.close()


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a `redflags` subprocess: this worktree's code, no stray settings.

    PREFECT_HOME stays the user's: a new one costs a database migration (tens of seconds
    on a busy machine) in every process that starts with it.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REDFLAGS_"))}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def redflags(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
    """Start `redflags ARGS` (this worktree's code) with stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=cwd,
    )


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
