"""The embedded DuckDB warehouse: one file, schemas that mirror the flow of data.

raw -> quarantine / staging -> features -> marts, plus ops for the bookkeeping.
The flow is the only writer and the only one that opens the file: readers (query,
report, export, analysts) open its published copy (pipelines/published.py).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipelines.console import progress
from pipelines.contracts import TABLES, load_contract
from pipelines.errors import UserError
from pipelines.sqltext import identifier

SCHEMAS: tuple[str, ...] = ("raw", "quarantine", "staging", "features", "marts", "ops")

# Lineage columns carried by every raw row: which file and line it came from, and which run.
RAW_LINEAGE = "source_file VARCHAR, source_row BIGINT, run_id VARCHAR"

# Columns raw tables no longer have, dropped from a warehouse made before: `extra_columns`
# kept the columns of a file that the contract does not know, which are not stored now.
RAW_DROPPED = ("extra_columns",)


def raw_table_sql(table: str) -> str:
    """raw.<table> keeps values exactly as read (text); staging casts them per the contract.

    Identifiers are already redacted and ages capped: nothing identifying is stored.
    """
    columns = ",\n    ".join(f"{identifier(name)} VARCHAR" for name in load_contract(table).names)
    return f"CREATE TABLE IF NOT EXISTS raw.{table} (\n    {columns},\n    {RAW_LINEAGE}\n)"


def quarantine_table_sql(table: str) -> str:
    """quarantine.<table>: one row per (row, rule) that failed, with the value as read."""
    return (
        f"CREATE TABLE IF NOT EXISTS quarantine.{table} (\n"
        "    source_file VARCHAR,\n    source_row BIGINT,\n    column_name VARCHAR,\n"
        "    rule VARCHAR,\n    value VARCHAR,\n    run_id VARCHAR\n)"
    )


def staging_table_sql(table: str) -> str:
    """staging.<table>: the contract's columns typed, plus the lineage of each row."""
    return load_contract(table).create_table_sql("staging", extra_columns=RAW_LINEAGE)


OPS_DDL = (
    """CREATE TABLE IF NOT EXISTS ops.run_log (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    status VARCHAR,
    input_dir VARCHAR,
    engine VARCHAR,
    rules_version VARCHAR,
    data_end DATE,
    details JSON,
    files_seen INTEGER,
    files_loaded INTEGER,
    files_unchanged INTEGER,
    files_rejected INTEGER,
    files_pruned INTEGER,
    rows_read BIGINT,
    rows_accepted BIGINT,
    rows_quarantined BIGINT,
    values_redacted BIGINT,
    ages_capped BIGINT
)""",
    # One row per version of an input file that a run looked at; `status` is loaded,
    # rejected, replaced (a later version of the file took its rows) or pruned.
    """CREATE TABLE IF NOT EXISTS ops.ingest_manifest (
    file_path VARCHAR,
    size_bytes BIGINT,
    content_hash VARCHAR,
    table_name VARCHAR,
    rows_read BIGINT,
    rows_accepted BIGINT,
    rows_quarantined BIGINT,
    status VARCHAR,
    message VARCHAR,
    run_id VARCHAR,
    ingested_at TIMESTAMP
)""",
    # One row per rules version a scoring used: the hash of the rule files, and the
    # rule file's text, so that a version in a mart or an extract can be looked up.
    """CREATE TABLE IF NOT EXISTS ops.rules_versions (
    rules_version VARCHAR PRIMARY KEY,
    rules_path VARCHAR,
    rules_text VARCHAR,
    first_used_at TIMESTAMP
)""",
)


def connect(path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file; read-only connections never create it."""
    path = Path(path)
    if read_only and not path.exists():
        raise UserError(f"{path}: no warehouse here; run `redflags run` first or pass --warehouse")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        raise UserError(f"{path}: cannot open the warehouse ({exc}).") from exc


def create_schemas(con: duckdb.DuckDBPyConnection) -> None:
    """Create every schema of the warehouse and the tables whose shape the contracts fix."""
    for schema in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table in TABLES:
        con.execute(raw_table_sql(table))
        con.execute(staging_table_sql(table))
        con.execute(quarantine_table_sql(table))
    drop_raw_columns(con)
    create_ops_tables(con)


def drop_raw_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Drop from the raw tables of an older warehouse the columns they no longer have
    (with what they held); a warehouse without them is not written to."""
    dropped = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = 'raw' "
        "AND list_contains(?, column_name) ORDER BY 1, 2",
        [list(RAW_DROPPED)],
    ).fetchall()
    for table, column in dropped:
        con.execute(f"ALTER TABLE raw.{identifier(table)} DROP COLUMN {identifier(column)}")


def create_ops_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The bookkeeping tables of schema ops (the schema must exist)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS ops")
    for ddl in OPS_DDL:
        con.execute(ddl)


@contextmanager
def open_warehouse(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writable connection with every schema in place, closed on exit."""
    con = connect(path)
    try:
        create_schemas(con)
        yield con
    finally:
        con.close()


def table_counts(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, int]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1",
        [schema],
    ).fetchall()
    return {
        name: con.execute(
            f"SELECT count(*) FROM {identifier(schema)}.{identifier(name)}"
        ).fetchone()[0]
        for (name,) in rows
    }


VALUE_SETS_DDL = """CREATE OR REPLACE TABLE staging.value_sets (
    value_set VARCHAR NOT NULL,
    code VARCHAR NOT NULL,
    code_system VARCHAR NOT NULL,
    is_prefix BOOLEAN NOT NULL,
    description VARCHAR
)"""


def load_value_sets_table(con: duckdb.DuckDBPyConnection) -> int:
    """Load schemas/value_sets/*.csv into staging.value_sets, so SQL selects code lists by name.

    `code` is stored normalised (upper case, no dots or spaces) and without the `*`
    of a prefix, which `is_prefix` records; SQL compares it with codes normalised the
    same way. Reloaded on every build, so an edited CSV takes effect at the next run.
    """
    import pandas as pd

    from pipelines.value_sets import load_value_sets

    entries = load_value_sets()
    frame = pd.DataFrame(
        {
            "value_set": [e.value_set for e in entries],
            "code": [e.normalized for e in entries],
            "code_system": [e.code_system for e in entries],
            "is_prefix": [e.is_prefix for e in entries],
            "description": [e.description for e in entries],
        }
    )
    con.execute(VALUE_SETS_DDL)
    con.register("_value_sets", frame)
    try:
        con.execute("INSERT INTO staging.value_sets SELECT * FROM _value_sets")
    finally:
        con.unregister("_value_sets")
    return len(frame)


# DuckDB lets one process open a file read-write, and none while another holds it, even
# read-only. Its refusal names the holder: 'Conflicting lock is held in ... (PID 1234)'.
LOCK_CONFLICT = "Could not set lock on file"
LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")
# Exit code of a run that gave up waiting (EX_TEMPFAIL): a scheduler may simply try again.
EXIT_BUSY = 75


def wait_for_writer(
    path: str | Path,
    timeout: float,
    *,
    report: Callable[[str], None] | None = None,
    every: float = 5.0,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse read-write, waiting up to `timeout` seconds while it is busy.

    Busy means another run writes it (readers open the published copy, not the
    warehouse, though a connection someone opened on the file itself counts too); it
    ends by itself, so waiting beats failing. Progress is reported every `every` seconds (through
    `report`, by default the console) so a waiting run never looks hung. Any other
    failure to open is reported at once.
    """
    report = report or progress
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    next_report = 0.0
    pause = 0.05
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if LOCK_CONFLICT not in str(exc):
                raise UserError(f"{path}: cannot open the warehouse ({exc}).") from exc
            holder = LOCK_HOLDER.search(str(exc))
            by = f"held by pid {holder.group(1)}" if holder else "held by another process"
        except duckdb.Error as exc:
            if is_damage(exc):
                raise damaged(path, exc) from None
            raise
        waited = time.monotonic() - started
        if waited >= timeout:
            raise UserError(
                f"{path}: warehouse busy ({by}); gave up after {timeout:g}s. Close the other "
                "connection or wait for the other run, or raise lock_timeout.",
                exit_code=EXIT_BUSY,
            )
        if waited >= next_report:
            report(f"warehouse busy ({by}), waiting\u2026 {waited:.0f}s/{timeout:g}s")
            next_report = waited + every
        time.sleep(min(pause, max(timeout - waited, 0.01)))
        pause = min(pause * 2, 1.0)


# ---------------------------------------------------------------- damage and rebuilding

# What DuckDB says when a block's checksum does not match: the file was damaged on disk.
DAMAGE_MESSAGES = ("Corrupt database file", "checksum")
# Where a damaged warehouse goes when `redflags run --rebuild` swaps a new one in.
DAMAGED_SUFFIX = ".damaged"
# The new warehouse of a rebuild, beside the old one until it is complete.
REBUILD_SUFFIX = ".rebuild"
# DuckDB's files of a database: the file itself and its write-ahead log.
DATABASE_FILE_SUFFIXES = ("", ".wal")


def is_damage(exc: BaseException) -> bool:
    return any(text in str(exc) for text in DAMAGE_MESSAGES)


def damaged(path: str | Path, exc: BaseException) -> UserError:
    """The one line for a damaged warehouse: what, and how to get a sound one back."""
    path = Path(path)
    reason = " ".join(str(exc).split("\n")[0].split())
    return UserError(
        f"{path}: the warehouse file is damaged ({reason}); nothing was written. Rebuild it "
        f"from the input with `redflags run --rebuild` (the damaged file is kept as "
        f"{path.name}{DAMAGED_SUFFIX})."
    )


def check_integrity(con: duckdb.DuckDBPyConnection, path: str | Path) -> None:
    """Read every block in use of the warehouse, so DuckDB verifies each one's checksum.

    DuckDB checks a block when it reads it; a run would meet a damaged block only
    halfway, after writing into the file. Reading every column of every table (DuckDB's
    catalog was read when the file opened) finds the damage first; it reads the whole
    file once, about as long as scoring takes.
    """
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT temporary"
    ).fetchall()
    try:
        for schema, table in tables:
            con.execute(
                f"SELECT bit_xor(hash(COLUMNS(*))) FROM {identifier(schema)}.{identifier(table)}"
            ).fetchall()
    except duckdb.Error as exc:
        if is_damage(exc):
            raise damaged(path, exc) from None
        raise


def rebuild_path(path: str | Path) -> Path:
    """Where `redflags run --rebuild` builds the new warehouse: beside the old one."""
    path = Path(path)
    return path.with_name(path.name + REBUILD_SUFFIX)


def discard(path: str | Path) -> None:
    """Remove a database file and its write-ahead log (a failed rebuild)."""
    for suffix in DATABASE_FILE_SUFFIXES:
        Path(str(path) + suffix).unlink(missing_ok=True)


def swap_in(rebuilt: str | Path, path: str | Path) -> Path | None:
    """Put a rebuilt warehouse in place of `path` by rename; the old file, if any, is kept
    as `<path>.damaged` (an earlier one replaced). Returns where the old file went."""
    path = Path(path)
    kept = path.with_name(path.name + DAMAGED_SUFFIX)
    old = path if path.exists() else None
    for suffix in DATABASE_FILE_SUFFIXES:
        Path(str(kept) + suffix).unlink(missing_ok=True)
        if Path(str(path) + suffix).exists():
            os.replace(str(path) + suffix, str(kept) + suffix)
    os.replace(rebuilt, path)
    return kept if old else None


def refuse_file_access(con: duckdb.DuckDBPyConnection) -> None:
    """No SQL on this database may read or write a file other than the database itself.

    The setting is the database's, so it holds for every connection this process opens
    to the file until the last one closes, and it cannot be turned back on. The writer
    reads input only from what pyarrow hands it (registered tables), so even SQL text
    that input managed to shape could not read `/etc/passwd` or write anywhere.
    """
    con.execute("SET enable_external_access = false")


@contextmanager
def writer(
    path: str | Path,
    timeout: float,
    *,
    report: Callable[[str], None] | None = None,
    memory_limit: str | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Hold the warehouse's writer lock for the block: one writer at a time, bounded wait.

    Other connections opened to the same file in this process share the database and
    so the lock; another process (a second run) waits or is refused. They
    share its memory limit too (a database-wide setting): DuckDB's default, 80% of the
    machine's memory, would let a run's sorts and hash tables grow with the input
    instead of spilling to `<warehouse>.tmp/`. And they share its refusal of file
    access (`refuse_file_access`), from the moment the lock is held. A damaged file
    is refused before anything is written into it (`check_integrity`).
    """
    con = wait_for_writer(path, timeout, report=report)
    try:
        check_integrity(con, path)
        if memory_limit:
            con.execute("SET memory_limit = ?", [memory_limit])
        create_schemas(con)
        refuse_file_access(con)
        yield con
    finally:
        con.close()
