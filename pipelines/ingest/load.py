"""Loading a prepared file into the warehouse: the single writer's half of the ingest stage.

Two steps per file. `prepare.prepare_file` reads, scrubs and validates a file into
files in a work directory, without the warehouse, so it can run on any worker.
`load_file`, the single writer, then checks what spans files (unique ids,
patients known in intake) against the warehouse and inserts the file's rows into
`raw.<table>`, `quarantine.<table>` and `staging.<table>`, all in one transaction,
recorded in `ops.ingest_manifest` by content hash: a rerun over the same file adds
nothing, a changed file replaces exactly the rows it brought before, and a rejected
file leaves nothing behind.

Rows read = rows accepted + rows quarantined, for every file, checked here.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.contracts import Contract, load_contract
from pipelines.ingest.prepare import QUARANTINE_FILE, PreparedFile, raw_stream, staging_select_sql
from pipelines.ingest.summary import (
    LOADED,
    PRUNED,
    REJECTED,
    REPLACED,
    UNCHANGED,
    FileReport,
    IngestSummary,
)
from pipelines.sqltext import identifier
from pipelines.validation import outcomes

# Beside the warehouse: one directory per run, one per prepared file inside it.
WORK_DIR_NAME = ".redflags-work"


class CountMismatch(RuntimeError):
    """Rows read differ from rows accepted + quarantined: a bug, never bad input."""


# ---------------------------------------------------------------- the work directory


def work_root(warehouse: str | Path) -> Path:
    """Where runs of this warehouse prepare files: beside it, so workers sharing its
    file system see them."""
    warehouse = Path(warehouse).resolve()
    return warehouse.parent / WORK_DIR_NAME / warehouse.name


def run_work_dir(warehouse: str | Path, run_id: str) -> Path:
    return work_root(warehouse) / run_id


def clear_work(warehouse: str | Path) -> None:
    """Remove what earlier runs left (a crash between prepare and load).

    Called while holding the warehouse's writer lock, so no other run is using it.
    """
    root = work_root(warehouse)
    shutil.rmtree(root, ignore_errors=True)
    with contextlib.suppress(OSError):  # shared by the warehouses of this directory
        root.parent.rmdir()


# ---------------------------------------------------------------- loading one file


def _quarantine_spanning_rules(
    con: duckdb.DuckDBPyConnection, contract: Contract, file: str, run_id: str
) -> None:
    """Unique ids and known patients span chunks and files: checked on the file's raw rows."""
    table = contract.table
    not_quarantined = (
        f"r.source_file = $file AND r.run_id = $run AND r.source_row NOT IN "
        f"(SELECT source_row FROM quarantine.{table} WHERE source_file = $file AND run_id = $run)"
    )
    for column in contract.columns:
        name = identifier(column.name)
        if column.unique:
            # The first row of an id is kept; later rows, and ids already in staging, go.
            con.execute(
                f"""INSERT INTO quarantine.{table}
                SELECT $file, source_row, $column, $rule, {name}, $run
                FROM (
                    SELECT r.source_row, r.{name}, row_number() OVER (
                        PARTITION BY r.{name} ORDER BY r.source_row) AS nth
                    FROM raw.{table} r
                    WHERE {not_quarantined} AND r.{name} IS NOT NULL
                )
                WHERE nth > 1 OR {name} IN (SELECT {name} FROM staging.{table})""",
                {"file": file, "run": run_id, "column": column.name, "rule": outcomes.UNIQUE},
            )
    for column in contract.columns:
        if column.references:
            name = identifier(column.name)
            ref_table, ref_column = column.references.split(".")
            con.execute(
                f"""INSERT INTO quarantine.{table}
                SELECT $file, r.source_row, $column, $rule, r.{name}, $run
                FROM raw.{table} r
                WHERE {not_quarantined} AND r.{name} IS NOT NULL
                  AND r.{name} NOT IN (
                      SELECT {identifier(ref_column)} FROM staging.{identifier(ref_table)})""",
                {
                    "file": file,
                    "run": run_id,
                    "column": column.name,
                    "rule": outcomes.known_in(column.references),
                },
            )


def _failing_rules(
    con: duckdb.DuckDBPyConnection, table: str, file: str, run_id: str
) -> dict[str, int]:
    rows = con.execute(
        f"""SELECT rule || coalesce('(' || column_name || ')', ''), count(DISTINCT source_row) AS n
        FROM quarantine.{table} WHERE source_file = ? AND run_id = ?
        GROUP BY 1 ORDER BY n DESC, 1""",
        [file, run_id],
    ).fetchall()
    return dict(rows)


def _manifest(
    con: duckdb.DuckDBPyConnection, report: FileReport, size: int, sha: str, run_id: str
) -> None:
    con.execute(
        "DELETE FROM ops.ingest_manifest WHERE file_path = ? AND content_hash = ? AND status = ?",
        [report.path, sha, REJECTED],
    )
    con.execute(
        "INSERT INTO ops.ingest_manifest VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            report.path,
            size,
            sha,
            report.table,
            report.rows_read,
            report.accepted,
            report.quarantined,
            report.status,
            report.message or None,
            run_id,
            datetime.now(UTC).replace(tzinfo=None),
        ],
    )


def _remove_rows_of(con: duckdb.DuckDBPyConnection, table: str, file: str) -> None:
    for schema in ("raw", "quarantine", "staging"):
        con.execute(f"DELETE FROM {schema}.{table} WHERE source_file = ?", [file])


def loaded_hashes(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The content hash of every file as last loaded: what makes a file unchanged."""
    rows = con.execute(
        "SELECT file_path, content_hash FROM ops.ingest_manifest WHERE status = ?", [LOADED]
    ).fetchall()
    return dict(rows)


def load_file(con: duckdb.DuckDBPyConnection, prepared: PreparedFile, run_id: str) -> FileReport:
    """Store a prepared file in one transaction, after the checks that span files.

    An unchanged file takes its counts from the manifest; a rejected one is recorded
    there and stores nothing. The file's work directory is removed once it is loaded.
    """
    report = replace(prepared.report, warnings=list(prepared.report.warnings))
    con.execute("SET enable_progress_bar = false")
    if report.status == UNCHANGED:
        previous = con.execute(
            "SELECT rows_read, rows_accepted, rows_quarantined FROM ops.ingest_manifest "
            "WHERE file_path = ? AND content_hash = ? AND status = ?",
            [report.path, prepared.sha256, LOADED],
        ).fetchone()
        if previous is None:
            raise RuntimeError(
                f"{report.path}: prepared as unchanged but not loaded in the manifest; "
                "please report this bug"
            )
        report.rows_read, report.accepted, report.quarantined = previous
        return report
    con.execute("BEGIN TRANSACTION")
    try:
        if report.status == LOADED:
            _load_rows(con, load_contract(report.table), Path(prepared.work_dir), report, run_id)
        _manifest(con, report, prepared.size, prepared.sha256, run_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    if prepared.work_dir:
        shutil.rmtree(prepared.work_dir, ignore_errors=True)
    return report


def _accepted_rows(
    con: duckdb.DuckDBPyConnection, work: Path, table: str, file: str, run_id: str
) -> pa.RecordBatchReader:
    """The file's raw rows that no rule quarantined, in the file's order.

    Filtered in Arrow, batch by batch, not by a join in DuckDB: a join hands on some
    of its small output chunks late, and staging keeps the file's order (patient
    order, which the cohort build's windows run faster on).
    """
    quarantined = con.execute(
        f"SELECT DISTINCT source_row FROM quarantine.{table} WHERE source_file = ? AND run_id = ?",
        [file, run_id],
    ).fetchnumpy()["source_row"]
    raw = raw_stream(work)
    if len(quarantined) == 0:
        return raw
    failed = pa.array(quarantined, pa.int64())
    accepted = (
        batch.filter(pc.invert(pc.is_in(batch["source_row"], value_set=failed))) for batch in raw
    )
    return pa.RecordBatchReader.from_batches(raw.schema, accepted)


def quarantine_stream(work: Path) -> pa.RecordBatchReader:
    """The failures a prepare wrote into `work`, one pass in bounded memory."""
    failures = pq.ParquetFile(work / QUARANTINE_FILE)
    return pa.RecordBatchReader.from_batches(
        failures.schema_arrow, failures.iter_batches(batch_size=64_000)
    )


def _load_rows(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    work: Path,
    report: FileReport,
    run_id: str,
) -> None:
    file, table = report.path, contract.table
    replaced = con.execute(
        "UPDATE ops.ingest_manifest SET status = ? WHERE file_path = ? AND status = ?",
        [REPLACED, file, LOADED],
    ).fetchone()
    if replaced and replaced[0]:
        _remove_rows_of(con, table, file)
    names = ", ".join(identifier(name) for name in contract.names)
    # Ordered inserts on every thread: DuckDB keeps the rows in the stream's order (batch
    # indices) and writes finished row groups as it goes. One thread kept the order too, but
    # left each row group to be compressed again at COMMIT: 1M intake rows took 10.5 CPU s
    # and 12.8 s, against 9.8 CPU s and 7.3 s on two threads.
    con.register("raw_rows", raw_stream(work))
    con.execute(
        f"INSERT INTO raw.{table} ({names}, source_file, source_row, run_id) "
        f"SELECT {names}, ?, source_row, ? FROM raw_rows",
        [file, run_id],
    )
    con.unregister("raw_rows")
    # Read by pyarrow and handed over: the writer's connection may not open files.
    con.register("quarantined_rows", quarantine_stream(work))
    con.execute(
        f"INSERT INTO quarantine.{table} SELECT ?, source_row, column_name, rule, value, ? "
        "FROM quarantined_rows",
        [file, run_id],
    )
    con.unregister("quarantined_rows")
    _quarantine_spanning_rules(con, contract, file, run_id)
    # The rows no rule quarantined, cast per the contract as they go into staging.
    con.register("accepted_rows", _accepted_rows(con, work, table, file, run_id))
    con.execute(
        f"INSERT INTO staging.{table} SELECT {names}, ?, source_row, ? "
        f"FROM ({staging_select_sql(contract)})",
        [file, run_id],
    )
    con.unregister("accepted_rows")
    report.accepted = con.execute(
        f"SELECT count(*) FROM staging.{table} WHERE source_file = ? AND run_id = ?", [file, run_id]
    ).fetchone()[0]
    report.quarantined = con.execute(
        f"SELECT count(DISTINCT source_row) FROM quarantine.{table} "
        "WHERE source_file = ? AND run_id = ?",
        [file, run_id],
    ).fetchone()[0]
    report.rules = _failing_rules(con, table, file, run_id)
    if report.rows_read != report.accepted + report.quarantined:
        raise CountMismatch(
            f"{file}: {report.rows_read} rows read but {report.accepted} accepted + "
            f"{report.quarantined} quarantined; please report this bug"
        )


# ---------------------------------------------------------------- a directory


def previously_loaded(con: duckdb.DuckDBPyConnection, input_dir: Path) -> list[str]:
    """Files of this input directory that earlier runs loaded."""
    prefix = str(Path(input_dir).resolve()) + "/"
    rows = con.execute(
        "SELECT DISTINCT file_path FROM ops.ingest_manifest WHERE status = ? "
        "AND starts_with(file_path, ?) ORDER BY 1",
        [LOADED, prefix],
    ).fetchall()
    return [r[0] for r in rows]


def handle_removed_files(
    con: duckdb.DuckDBPyConnection, input_dir: Path, present: Iterable[str], *, prune: bool
) -> tuple[list[str], list[str]]:
    """Files gone from the input: their rows stay unless `prune`. Returns (pruned, missing)."""
    gone = sorted(set(previously_loaded(con, input_dir)) - set(present))
    if not prune:
        return [], gone
    con.execute("BEGIN TRANSACTION")
    for file in gone:
        table = con.execute(
            "SELECT table_name FROM ops.ingest_manifest WHERE file_path = ? AND status = ?",
            [file, LOADED],
        ).fetchone()[0]
        _remove_rows_of(con, table, file)
        con.execute(
            "UPDATE ops.ingest_manifest SET status = ? WHERE file_path = ? AND status = ?",
            [PRUNED, file, LOADED],
        )
    con.execute("COMMIT")
    return gone, []


def needs_recheck(table: str, reports: list[FileReport]) -> bool:
    """Whether unchanged files of `table` must be validated again in this run.

    Referrals and diagnoses are checked against the patients of intake. When an
    intake file was loaded, replaced or rejected in this run, a referrals file
    checked against the old intake may now hold rows that a fresh run would
    accept (or quarantine), so it is checked again: an incremental run then
    equals a run from scratch over the same files.
    """
    if table == "intake":
        return False
    return any(r.status != UNCHANGED for r in reports if r.table == "intake")


def record_run(con: duckdb.DuckDBPyConnection, summary: IngestSummary, input_dir: Path) -> None:
    """The run's ingest counts in ops.run_log (the row is created if the run has none yet)."""
    values = {
        "files_seen": len(summary.files),
        "files_loaded": summary.count_status(LOADED),
        "files_unchanged": summary.count_status(UNCHANGED),
        "files_rejected": summary.count_status(REJECTED),
        "files_pruned": len(summary.pruned),
        "rows_read": summary.total("rows_read"),
        "rows_accepted": summary.total("accepted"),
        "rows_quarantined": summary.total("quarantined"),
        "values_redacted": summary.total("redacted"),
        "ages_capped": summary.total("capped"),
    }
    details = json.dumps({"ingest": summary.to_json()})
    columns = ", ".join(values)
    updates = ", ".join(f"{c} = excluded.{c}" for c in values)
    con.execute(
        f"""INSERT INTO ops.run_log (run_id, started_at, status, input_dir, details, {columns})
        VALUES (?, ?, 'ingested', ?, ?, {", ".join("?" for _ in values)})
        ON CONFLICT (run_id) DO UPDATE SET details = excluded.details, {updates}""",
        [
            summary.run_id,
            datetime.now(UTC).replace(tzinfo=None),
            str(Path(input_dir).resolve()),
            details,
            *values.values(),
        ],
    )
