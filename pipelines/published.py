"""The published copy: what readers open instead of the warehouse.

DuckDB lets no process write a file while another has it open, even read-only, so an
analyst who left DBeaver open on the warehouse would hold up the nightly run. Readers
therefore never open the warehouse. After the marts and their release are published,
the run writes a second DuckDB file beside the warehouse, `<stem>.published.duckdb`
(data/warehouse.duckdb -> data/warehouse.published.duckdb), holding what `query`,
`report`, `export` and analysts read: schemas `marts` (without the build's scratch
tables), `release` and `ops`, with the marts' comments, and `ops.publication`, which
says which run it is. The per-row layers (raw, quarantine, staging, features) stay in
the warehouse: nothing reads them after a run, and they are most of its size.

The copy is written under the run's writer lock into a temporary file in the same
directory, then renamed over the previous one, so a reader opens either the previous
publication or this one, whole. A reader that has the previous file open keeps reading
it (its file is unlinked, not changed) until it closes; a new connection sees the new
one. The file is left without write permission, and every reader here opens it
read-only, so nobody holds a lock on it that could matter: the next publication
replaces it by rename whoever has it open.
"""

from __future__ import annotations

import glob
import os
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.errors import UserError
from pipelines.sqltext import identifier, literal

PUBLISHED_SUFFIX = ".published.duckdb"
# The schemas the copy holds, whole (marts without the build's scratch tables).
PUBLISHED_SCHEMAS: tuple[str, ...] = ("marts", "release", "ops")
# One row in the copy: which run it is, when it was made, from which warehouse.
PUBLICATION = "ops.publication"
# The copy as it is written, before it takes the published name.
TEMPORARY_SUFFIX = ".tmp"
# Rows per Arrow batch handed from the warehouse to the copy.
BATCH_ROWS = 100_000


def published_path(warehouse: str | Path) -> Path:
    """Where the copy of `warehouse` is: beside it, `<stem>.published.duckdb`."""
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.stem + PUBLISHED_SUFFIX)


def _temporary_paths(target: Path) -> list[Path]:
    """Copies being written (or left by a run that was killed), and their logs."""
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.*{TEMPORARY_SUFFIX}*"))


def _published_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str | None]]:
    """(schema, table, CREATE TABLE statement, comment) of every table the copy holds."""
    from pipelines.models import BUILD_PREFIX

    return con.execute(
        "SELECT schema_name, table_name, sql, comment FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT temporary "
        "AND list_contains(?, schema_name) AND NOT starts_with(table_name, ?) "
        "ORDER BY schema_name, table_name",
        [list(PUBLISHED_SCHEMAS), BUILD_PREFIX],
    ).fetchall()


def _published_views(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str | None]]:
    """(schema, view, CREATE VIEW statement, comment) of every view of the published
    schemas: made again in the copy after the tables, so that a view reading anything
    the copy does not hold fails the copy instead of going missing from it."""
    return con.execute(
        "SELECT schema_name, view_name, sql, comment FROM duckdb_views() "
        "WHERE database_name = current_database() AND NOT internal AND NOT temporary "
        "AND list_contains(?, schema_name) ORDER BY schema_name, view_name",
        [list(PUBLISHED_SCHEMAS)],
    ).fetchall()


def count_presentations(con: duckdb.DuckDBPyConnection) -> int | None:
    """All validated presentations of the warehouse (staging.intake, or its one-to-one
    features table): the report's denominator, which the copy keeps as one number."""
    present = {
        name
        for (name,) in con.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
            "WHERE database_name = current_database()"
        ).fetchall()
    }
    for name in ("staging.intake", "features.presentation_flags"):
        if name in present:
            n = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
            if n:
                return int(n)
    return None


def _release_run(con: duckdb.DuckDBPyConnection) -> str | None:
    """The run whose release the warehouse holds, if any."""
    from pipelines.disclosure.release import AUDIT, SCHEMA

    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?",
        [SCHEMA, AUDIT],
    ).fetchall()[0][0]
    if not found:
        return None
    rows = con.execute(f"SELECT run_id FROM {SCHEMA}.{AUDIT}").fetchall()
    return rows[0][0] if rows else None


def _copy_table(
    source: duckdb.DuckDBPyConnection,
    copy: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    create_sql: str,
    comment: str | None,
) -> None:
    """One table, with its types, constraints and comments, streamed through Arrow."""
    name = f"{identifier(schema)}.{identifier(table)}"
    copy.execute(f"CREATE SCHEMA IF NOT EXISTS {identifier(schema)}")
    copy.execute(create_sql)
    with source.sql(f"SELECT * FROM {name}").to_arrow_reader(BATCH_ROWS) as batches:
        copy.register("_published_rows", batches)
        try:
            copy.execute(f"INSERT INTO {name} SELECT * FROM _published_rows")
        finally:
            copy.unregister("_published_rows")
    if comment:
        copy.execute(f"COMMENT ON TABLE {name} IS {literal(comment)}")
    columns = source.execute(
        "SELECT column_name, comment FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
        "AND comment IS NOT NULL ORDER BY column_index",
        [schema, table],
    ).fetchall()
    for column, text in columns:
        copy.execute(f"COMMENT ON COLUMN {name}.{identifier(column)} IS {literal(text)}")


def _record_publication(
    copy: duckdb.DuckDBPyConnection,
    run_id: str | None,
    warehouse: str | Path,
    presentations: int | None,
) -> None:
    """ops.publication: one row saying which run the copy is, when it was written and
    from which warehouse, with the warehouse's count the report needs."""
    copy.execute("CREATE SCHEMA IF NOT EXISTS ops")
    copy.execute(
        f"CREATE TABLE {PUBLICATION} (run_id VARCHAR, published_at TIMESTAMP, "
        "warehouse VARCHAR, n_presentations BIGINT)"
    )
    published_at = datetime.now(UTC).replace(tzinfo=None)
    copy.execute(
        f"INSERT INTO {PUBLICATION} VALUES (?, ?, ?, ?)",
        [run_id, published_at, str(Path(warehouse)), presentations],
    )
    comment = (
        "This file is the read-only published copy of the warehouse named here, written "
        "after run run_id; the next run replaces it."
    )
    copy.execute(f"COMMENT ON TABLE {PUBLICATION} IS {literal(comment)}")


def write_copy(
    con: duckdb.DuckDBPyConnection, warehouse: str | Path, run_id: str | None = None
) -> Path:
    """Write the published copy of the warehouse `con` is connected to and swap it in.

    `con` is the run's writer connection (the caller holds the lock, so no other run
    writes a copy meanwhile); `warehouse` names where the copy goes (a rebuild writes a
    new warehouse under another name). The warehouse's database refuses file access,
    so the rows travel through Arrow, in batches, into a database of its own that is
    opened on the temporary file and equally refuses file access. Whatever fails, the
    previous copy stays in place and the temporary file is removed.
    """
    target = published_path(warehouse)
    for stale in _temporary_paths(target):
        stale.unlink(missing_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}")
    memory_limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    run_id = run_id or _release_run(con)
    presentations = count_presentations(con)
    try:
        copy = duckdb.connect(
            str(temporary),
            config={"enable_external_access": False, "memory_limit": memory_limit},
        )
        try:
            for schema, table, create_sql, comment in _published_tables(con):
                _copy_table(con, copy, schema, table, create_sql, comment)
            for schema, view, create_sql, comment in _published_views(con):
                copy.execute(create_sql)
                if comment:
                    name = f"{identifier(schema)}.{identifier(view)}"
                    copy.execute(f"COMMENT ON VIEW {name} IS {literal(comment)}")
            _record_publication(copy, run_id, warehouse, presentations)
            copy.execute("CHECKPOINT")
        finally:
            copy.close()
        read_only = stat.S_IMODE(temporary.stat().st_mode) & ~(
            stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        )
        temporary.chmod(read_only)
        os.replace(temporary, target)
    except BaseException:
        for path in (temporary, Path(f"{temporary}.wal")):
            path.unlink(missing_ok=True)
        raise
    return target


def connect_for_analysts(warehouse: str | Path) -> duckdb.DuckDBPyConnection:
    """The published copy of `warehouse`, read-only, with file-system access off: a
    query can read the copy and nothing else, and never waits for a run.

    DuckDB refuses CREATE/INSERT/... on a read-only database itself; turning external
    access off also refuses COPY ... TO, ATTACH and reading arbitrary files. Every
    reader (query, report, export) opens the copy here, with this one configuration.
    """
    warehouse = Path(warehouse)
    path = published_path(warehouse)
    if not path.exists():
        if warehouse.name.endswith(PUBLISHED_SUFFIX) and warehouse.exists():
            raise UserError(
                f"{warehouse}: a published copy; pass the warehouse it was published from"
            )
        if not warehouse.exists():
            raise UserError(
                f"{warehouse}: no warehouse here; run `redflags run` first or pass --warehouse"
            )
        raise UserError(
            f"{path}: no published copy of {warehouse.name} yet; `redflags run` publishes one"
        )
    try:
        return duckdb.connect(str(path), read_only=True, config={"enable_external_access": False})
    except duckdb.Error as exc:
        raise UserError(f"{path}: cannot open the published copy read-only ({exc}).") from exc
