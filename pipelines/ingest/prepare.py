"""Prepare one input file for loading, without touching the warehouse.

The per-file half of the ingest stage, split off so that it can run anywhere (a Dask
worker, another thread) while DuckDB stays the single writer of the warehouse: read
the file in bounded chunks, scrub identifiers, validate its distinct values with the
contract's Great Expectations suite, and write what the loader needs as files in a
work directory:

- `raw.arrows`: every parsed row, text, in the shape of `raw.<table>` (contract
  columns and `source_row`; columns outside the contract are not kept, only named in
  the file's report), as an Arrow IPC stream: the loader reads
  it once and in order, and writing it costs no encoding (Parquet's dictionaries and
  statistics cost 2 CPU s per million intake rows, to be decoded again at once);
- `quarantine.parquet`: one row per (row, rule) that failed a rule of this file alone
  (unparseable lines, values holding an identifier, values the suite rejected).

What spans files (unique ids, patients known in intake) needs the warehouse, so the
loader (`pipelines.ingest.load.load_file`) checks it, and then casts the rows no rule
failed into `staging.<table>` straight from `raw.arrows` (`staging_select_sql`): a
typed copy written here would cost a third write and read of the same rows.
Paths in, paths out: the result is plain data, and nothing here depends on the run,
so the same file prepares the same.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.config import DEFAULT_DATE_MIN, DEFAULT_FUTURE_DATES
from pipelines.contracts import TABLES, Column, Contract, load_contract
from pipelines.ingest.readers import (
    DEFAULT_CHUNK_BYTES,
    FileInfo,
    Header,
    inspect_file,
    iter_chunks,
    read_header,
)
from pipelines.ingest.summary import LOADED, REJECTED, UNCHANGED, FileReport
from pipelines.sqltext import identifier
from pipelines.validation.checkpoint import DistinctValues, Failure, Validator
from pipelines.validation.identifiers import (
    Flagged,
    redacted_text,
    reject_five_digit_zip,
    reject_identifier_columns,
    reportable_names,
    scrub,
)
from pipelines.validation.outcomes import FileRejected

# The files a prepared input leaves in its work directory, read by the loader.
RAW_FILE, QUARANTINE_FILE = "raw.arrows", "quarantine.parquet"
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_row", pa.int64()),
        ("column_name", pa.string()),
        ("rule", pa.string()),
        ("value", pa.string()),
    ]
)


@dataclass
class PreparedFile:
    """One file made ready to load: its report so far and where its files are.

    `report.status` is LOADED (ready: `work_dir` holds the files), UNCHANGED (its
    content hash is the one last loaded; nothing was read past the hash) or REJECTED
    (nothing of it may be stored; `report.message` says why).
    """

    report: FileReport
    size: int = 0
    sha256: str = ""
    work_dir: str | None = None


# ---------------------------------------------------------------- table-level checks


def check_columns(path: Path, contract: Contract, header: Header) -> list[str]:
    """Reject a file that cannot be the table it claims to be; name the columns not kept."""
    present = set(header.columns)
    missing = [c for c in contract.required_names if c not in present]
    if missing:
        hint = "add them, or check that the file is the table its name says"
        if len(header.columns) == 1 and header.delimiter is not None:
            hint = (
                f"the header is one column ({reportable_names(header.columns)[0]!r}): separate "
                "columns with a comma, a semicolon or a tab"
            )
        for other in TABLES:
            other_contract = load_contract(other)
            # every column of the file is the other table's, its required ones among them
            # (patients requires patient_id alone, which every table has)
            fits = set(other_contract.required_names) <= present <= set(other_contract.names)
            if other != contract.table and fits:
                hint = (
                    f"its columns are those of {other}: rename it to start with "
                    f"'{other_contract.file_prefix}'"
                )
        raise FileRejected(
            "missing_columns",
            f"{path}: missing required column(s) {', '.join(missing)} of {contract.table}; {hint}",
        )
    extra = [c for c in header.columns if c not in contract]
    if extra:
        return [
            f"{path.name}: column(s) {', '.join(reportable_names(extra))} not in the contract "
            f"of {contract.table}; not stored"
        ]
    return []


# ---------------------------------------------------------------- SQL of the step


def cast_sql(column: Column) -> str:
    """How a validated text value becomes the contract's type (generated, not hand-copied).

    DuckDB's boolean cast reads every spelling the suite allows (true/t/yes/y/1 and
    false/f/no/n/0, any case), so a plain CAST suffices for every type.
    """
    if column.type == "string":
        return column.name
    return f"CAST({column.name} AS {column.duckdb_type}) AS {column.name}"


def staging_select_sql(contract: Contract) -> str:
    """The accepted rows of a file, typed: what `staging.<table>` receives.

    Reads `accepted_rows` (the file's raw rows that no rule quarantined), which the
    loader registers before it inserts.
    """
    from pipelines.models import render_template

    return render_template(
        "sql/staging/stg_accepted_rows.sql",
        table=contract.table,
        casts=[cast_sql(c) for c in contract.columns],
    )


# ---------------------------------------------------------------- the work directory


def file_work_dir(work_root: str | Path, table: str, file: str) -> Path:
    """Where one input file's prepared files go: named by its path, so two files never share."""
    digest = hashlib.sha256(file.encode("utf-8")).hexdigest()[:16]
    return Path(work_root) / table / digest


def raw_schema(contract: Contract) -> pa.Schema:
    """`raw.<table>` without the lineage the loader adds (file and run)."""
    return pa.schema(
        [*((name, pa.string()) for name in contract.names), ("source_row", pa.int64())]
    )


def raw_stream(work_dir: str | Path) -> pa.RecordBatchReader:
    """The raw rows a prepare wrote into `work_dir`, in file order; one pass, in bounded
    memory (DuckDB scans it as a table once it is registered)."""
    return pa.ipc.open_stream(pa.OSFile(str(Path(work_dir) / RAW_FILE)))


def raw_rows(contract: Contract, rows: pa.Table) -> pa.Table:
    """A scrubbed chunk in the shape of raw: the contract's columns, absent ones NULL.

    Columns outside the contract are not carried: nothing of them is stored.
    """
    n_rows = rows.num_rows
    columns = [
        pc.cast(rows[n], pa.string()) if n in rows.column_names else pa.nulls(n_rows, pa.string())
        for n in contract.names
    ]
    return pa.Table.from_arrays(
        [*columns, pc.cast(rows["source_row"], pa.int64())], schema=raw_schema(contract)
    )


# ---------------------------------------------------------------- one file

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """The items of `items`, the next one made in a thread while the caller works on this.

    Reading a chunk (Arrow's parser, numpy) mostly runs without the GIL, so it overlaps
    the scrubbing and writing of the chunk before it; at most one chunk waits. An error
    of the reader is raised here, at the item it stopped.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(next, items, _END)
        while (item := pending.result()) is not _END:
            pending = pool.submit(next, items, _END)
            yield item


# One GX context per process and day: building suites and Checkpoints costs seconds.
# Threads of one process (a threaded Dask worker) share it, one validation at a time.
_GX_LOCK = threading.Lock()


_VALIDATORS: dict[tuple, Validator] = {}


def validator_for(
    load_date: date,
    date_min: date = DEFAULT_DATE_MIN,
    date_max: date | None = None,
    future_dates: str = DEFAULT_FUTURE_DATES,
) -> Validator:
    with _GX_LOCK:
        key = (load_date, date_min, date_max, future_dates)
        if key not in _VALIDATORS:
            _VALIDATORS[key] = Validator(load_date, date_min, date_max, future_dates)
        return _VALIDATORS[key]


def prepare_file(
    table: str,
    path: str | Path,
    work_root: str | Path,
    *,
    loaded_hash: str | None = None,
    load_date: date | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    date_min: date = DEFAULT_DATE_MIN,
    date_max: date | None = None,
    future_dates: str = DEFAULT_FUTURE_DATES,
) -> PreparedFile:
    """Read, scrub and validate one file into files under `work_root`; never the warehouse.

    `loaded_hash` is the content hash the manifest holds for this path as loaded: when
    the file still has it, the file is UNCHANGED and nothing past the hash is read. Pass
    None to prepare the file whatever it holds (a recheck). The report carries the
    expectations GX evaluated (`FileReport.expectations`), as plain data, to the process
    that writes the validation pages. `date_min` and `date_max` (None: the load date)
    bound the plausible dates, and `future_dates` says whether a date after the load
    date is quarantined (settings of the same name).
    """
    path = Path(path).resolve()
    file = str(path)
    contract = load_contract(table)
    report = FileReport(path=file, table=table, status=LOADED)
    size, sha = 0, ""
    try:
        info = inspect_file(path)
        size, sha = info.size, info.sha256
        if loaded_hash is not None and sha == loaded_hash:
            return PreparedFile(FileReport(file, table, UNCHANGED), size, sha)
        report.warnings.extend(info.warnings)
        header = read_header(info)
        reject_identifier_columns(path, header.columns)
        report.warnings.extend(check_columns(path, contract, header))
        out = file_work_dir(work_root, table, file)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        validator = validator_for(load_date or date.today(), date_min, date_max, future_dates)
        try:
            _prepare_rows(validator, contract, info, header, report, out, chunk_bytes)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
        return PreparedFile(report, size, sha, str(out))
    except FileRejected as exc:
        rejected = FileReport(
            path=file, table=table, status=REJECTED, message=exc.message, warnings=report.warnings
        )
        return PreparedFile(rejected, size, sha)


def _prepare_rows(
    validator: Validator,
    contract: Contract,
    info: FileInfo,
    header: Header,
    report: FileReport,
    out: Path,
    chunk_bytes: int,
) -> None:
    distinct = DistinctValues(contract)
    early: list[pa.Table] = []  # quarantined while reading: unparseable lines, the guard's rules
    # Scratch and in memory, for this file's own rules; it reads only the tables registered
    # here, so it may touch no file.
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        con.execute("SET enable_progress_bar = false")
        with (
            pa.OSFile(str(out / RAW_FILE), "wb") as sink,
            pa.ipc.new_stream(sink, raw_schema(contract)) as raw,
        ):
            for chunk in read_ahead(iter_chunks(info, header, max_bytes=chunk_bytes)):
                report.rows_read += chunk.n_read
                reject_five_digit_zip(info.path, chunk.rows)
                scrubbed = scrub(contract, chunk.rows)
                report.redacted += scrubbed.redacted
                report.capped += scrubbed.capped
                distinct.add(scrubbed.rows)
                raw.write_table(raw_rows(contract, scrubbed.rows))
                early.extend(_flagged_rows(f) for f in scrubbed.flagged)
                # An unparseable line is quarantined as read, but never with an identifier.
                bad = chunk.bad_lines
                early.append(
                    pa.table(
                        [
                            bad["source_row"],
                            bad["column_name"],
                            bad["rule"],
                            redacted_text(bad["value"]),
                        ],
                        schema=QUARANTINE_SCHEMA,
                    )
                )
        with _GX_LOCK:
            result = validator.validate(contract, distinct)
        report.expectations = result.checked
        if report.rows_read == 0:
            report.warnings.append(f"{info.path.name}: a header but no rows")
        _write_outputs(con, out, early, result.failures)
    finally:
        con.close()


def _flagged_rows(flagged: Flagged) -> pa.Table:
    """The guard's quarantined rows of one column and rule, as quarantine rows."""
    n = len(flagged.source_rows)
    return pa.table(
        [
            flagged.source_rows,
            pa.repeat(pa.scalar(flagged.column), n),
            pa.repeat(pa.scalar(flagged.rule), n),
            flagged.values,
        ],
        schema=QUARANTINE_SCHEMA,
    )


def _write_outputs(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    early: list[pa.Table],
    failures: list[Failure],
) -> None:
    """quarantine.parquet: what was quarantined while reading, and every row holding a
    value the suite rejected, in the file's order."""
    con.register("early", pa.concat_tables([QUARANTINE_SCHEMA.empty_table(), *early]))
    con.execute("CREATE TABLE failed AS SELECT * FROM early")
    con.unregister("early")
    for failure in failures:
        column = failure.column
        con.register("failing_values", pa.table({"value": pc.drop_null(failure.values)}))
        con.register("raw_rows", raw_stream(out))
        try:
            con.execute(
                f"""INSERT INTO failed
                SELECT source_row, $column, $rule, {identifier(column)} FROM raw_rows
                WHERE {identifier(column)} IN (SELECT value FROM failing_values)
                   OR ($null_failed AND {identifier(column)} IS NULL)""",
                {
                    "column": column,
                    "rule": failure.rule,
                    "null_failed": failure.values.null_count > 0,
                },
            )
        finally:
            con.unregister("failing_values")
            con.unregister("raw_rows")
    ordered = con.sql(
        "SELECT * FROM failed ORDER BY source_row, column_name NULLS FIRST, rule"
    ).to_arrow_reader()
    with pq.ParquetWriter(out / QUARANTINE_FILE, QUARANTINE_SCHEMA) as writer:
        for batch in ordered:
            writer.write_batch(batch.cast(QUARANTINE_SCHEMA))
