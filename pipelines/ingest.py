"""Ingest and validate: decide what of each input file enters the warehouse, and say why.

For one file: read it in bounded chunks, scrub identifiers, validate each chunk with
the contract's Great Expectations suites, store every row in `raw.<table>` (text),
every failure in `quarantine.<table>`, then check what spans chunks and files
(unique ids, patients known in intake) in DuckDB and cast the accepted rows into
`staging.<table>`. All of it happens in one transaction per file, recorded in
`ops.ingest_manifest` by content hash: a rerun over the same file adds nothing, a
changed file replaces exactly the rows it brought before, and a rejected file
leaves nothing behind.

Rows read = rows accepted + rows quarantined, for every file, checked here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.contracts import TABLES, Column, Contract, load_contract
from pipelines.paths import SQL_DIR
from pipelines.sources.canonical import discover
from pipelines.sources.readers import (
    DEFAULT_CHUNK_BYTES,
    FileInfo,
    Header,
    inspect_file,
    iter_chunks,
    read_header,
)
from pipelines.validation import outcomes
from pipelines.validation.checkpoint import DistinctValues, Failure, Validator
from pipelines.validation.identifiers import (
    identifier_rules,
    reject_five_digit_zip,
    reject_identifier_columns,
    scrub,
)
from pipelines.validation.outcomes import FileRejected
from pipelines.warehouse import create_schemas, open_warehouse

LOADED, UNCHANGED, REJECTED, REPLACED, PRUNED = (
    "loaded",
    "unchanged",
    "rejected",
    "replaced",
    "pruned",
)


class CountMismatch(RuntimeError):
    """Rows read differ from rows accepted + quarantined: a bug, never bad input."""


@dataclass
class FileReport:
    """What happened to one input file, as the summary table and the manifest show it."""

    path: str
    table: str
    status: str
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    rules: dict[str, int] = field(default_factory=dict)  # "rule(column)" -> rows
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    redacted: int = 0
    capped: int = 0


@dataclass
class IngestSummary:
    """One run's ingest stage; plain data, so a Prefect task can return it."""

    run_id: str
    files: list[FileReport] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # gone from the input, rows kept

    def total(self, name: str) -> int:
        """A count over the files this run loaded (unchanged files were counted before)."""
        return sum(getattr(f, name) for f in self.files if f.status == LOADED)

    def count_status(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def clean(self) -> bool:
        """No row quarantined and no file rejected (unchanged files count as they were)."""
        return self.total("quarantined") == 0 and self.count_status(REJECTED) == 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> IngestSummary:
        files = [FileReport(**f) for f in data.get("files", [])]
        return cls(data["run_id"], files, list(data["pruned"]), list(data["missing"]))


# ---------------------------------------------------------------- table-level checks


def check_columns(path: Path, contract: Contract, header: Header) -> list[str]:
    """Reject a file that cannot be the table it claims to be; warn about unknown columns."""
    present = set(header.columns)
    missing = [c for c in contract.required_names if c not in present]
    if missing:
        hint = "add them, or check that the file is the table its name says"
        if len(header.columns) == 1 and header.delimiter is not None:
            hint = (
                f"the header is one column ({header.columns[0][:60]!r}): separate columns with "
                "a comma, a semicolon or a tab"
            )
        for other in TABLES:
            other_contract = load_contract(other)
            if other != contract.table and set(other_contract.required_names) <= present:
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
            f"{path.name}: unknown column(s) {', '.join(extra)} kept in raw.{contract.table}"
            ".extra_columns and ignored downstream"
        ]
    return []


# ---------------------------------------------------------------- SQL of the stage


def cast_sql(column: Column) -> str:
    """How a validated text value becomes the contract's type (generated, not hand-copied).

    DuckDB's boolean cast reads every spelling the suite allows (true/t/yes/y/1 and
    false/f/no/n/0, any case), so a plain CAST suffices for every type.
    """
    if column.type == "string":
        return column.name
    return f"CAST({column.name} AS {column.duckdb_type}) AS {column.name}"


def staging_insert_sql(contract: Contract) -> str:
    template = (SQL_DIR / "staging" / "stg_accepted_rows.sql").read_text(encoding="utf-8")
    casts = ",\n    ".join(cast_sql(c) for c in contract.columns)
    return template.format(table=contract.table, casts=casts)


def _write_raw(
    con: duckdb.DuckDBPyConnection, contract: Contract, rows: pa.Table, file: str, run_id: str
) -> None:
    names = [n for n in rows.column_names if n != "source_row"]
    known = [n for n in names if n in contract]
    extra = [n for n in names if n not in contract]
    extra_sql = (
        "CAST(json_object(" + ", ".join(f"'{n}', \"{n}\"" for n in extra) + ") AS VARCHAR)"
        if extra
        else "NULL"
    )
    select = ", ".join([*(f'"{n}"' for n in known), f"{extra_sql} AS extra_columns"])
    con.register("chunk_rows", rows)
    try:
        con.execute(
            f"INSERT INTO raw.{contract.table} BY NAME SELECT {select}, "
            "? AS source_file, source_row, ? AS run_id FROM chunk_rows",
            [file, run_id],
        )
    finally:
        con.unregister("chunk_rows")


def _write_quarantine(
    con: duckdb.DuckDBPyConnection, table: str, failures: pa.Table, file: str, run_id: str
) -> None:
    if failures.num_rows == 0:
        return
    con.register("chunk_failures", failures)
    try:
        con.execute(
            f"INSERT INTO quarantine.{table} SELECT ?, source_row, column_name, rule, value, ? "
            "FROM chunk_failures",
            [file, run_id],
        )
    finally:
        con.unregister("chunk_failures")


def _quarantine_failing_values(
    con: duckdb.DuckDBPyConnection, table: str, failure: Failure, file: str, run_id: str
) -> None:
    """Every row of the file that holds a value the suite rejected goes to quarantine."""
    column = failure.column
    con.register("failing_values", pa.table({"value": pc.drop_null(failure.values)}))
    try:
        con.execute(
            f"""INSERT INTO quarantine.{table}
            SELECT source_file, source_row, $column, $rule, {column}, run_id
            FROM raw.{table}
            WHERE source_file = $file AND run_id = $run
              AND ({column} IN (SELECT value FROM failing_values)
                   OR ($null_failed AND {column} IS NULL))""",
            {
                "column": column,
                "rule": failure.rule,
                "file": file,
                "run": run_id,
                "null_failed": failure.values.null_count > 0,
            },
        )
    finally:
        con.unregister("failing_values")


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
        if column.unique:
            # The first row of an id is kept; later rows, and ids already in staging, go.
            con.execute(
                f"""INSERT INTO quarantine.{table}
                SELECT $file, source_row, '{column.name}', '{outcomes.UNIQUE}', {column.name}, $run
                FROM (
                    SELECT r.source_row, r.{column.name}, row_number() OVER (
                        PARTITION BY r.{column.name} ORDER BY r.source_row) AS nth
                    FROM raw.{table} r
                    WHERE {not_quarantined} AND r.{column.name} IS NOT NULL
                )
                WHERE nth > 1 OR {column.name} IN (SELECT {column.name} FROM staging.{table})""",
                {"file": file, "run": run_id},
            )
    for column in contract.columns:
        if column.references:
            ref_table, ref_column = column.references.split(".")
            rule = outcomes.known_in(column.references)
            con.execute(
                f"""INSERT INTO quarantine.{table}
                SELECT $file, r.source_row, '{column.name}', '{rule}', r.{column.name}, $run
                FROM raw.{table} r
                WHERE {not_quarantined} AND r.{column.name} IS NOT NULL
                  AND r.{column.name} NOT IN (SELECT {ref_column} FROM staging.{ref_table})""",
                {"file": file, "run": run_id},
            )


def _stage_accepted(
    con: duckdb.DuckDBPyConnection, contract: Contract, file: str, run_id: str
) -> int:
    table = contract.table
    # A view cannot take parameters; the file and run are quoted as SQL literals.
    of_file = f"source_file = '{_quote(file)}' AND run_id = '{_quote(run_id)}'"
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW accepted_rows AS
        SELECT r.* FROM (SELECT * FROM raw.{table} WHERE {of_file}) r
        ANTI JOIN (SELECT source_row FROM quarantine.{table} WHERE {of_file}) q
        ON r.source_row = q.source_row"""
    )
    con.execute(staging_insert_sql(contract))
    return con.execute(
        f"SELECT count(*) FROM staging.{table} WHERE source_file = ? AND run_id = ?", [file, run_id]
    ).fetchone()[0]


def _quote(text: str) -> str:
    return text.replace("'", "''")


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


# ---------------------------------------------------------------- one file


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    validator: Validator,
    table: str,
    path: Path,
    run_id: str,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    recheck: bool = False,
) -> FileReport:
    """Read, validate and load one file in one transaction; a rejected file stores nothing.

    An unchanged file (same content hash as its last load) is skipped, unless
    `recheck`: then it is validated and loaded again, because what it is checked
    against (the patients of intake) has changed since.
    """
    path = Path(path).resolve()
    file = str(path)
    contract = load_contract(table)
    con.execute("SET enable_progress_bar = false")
    report = FileReport(path=file, table=table, status=LOADED)
    size, sha = 0, ""
    try:
        info = inspect_file(path)
        size, sha = info.size, info.sha256
        previous = con.execute(
            "SELECT rows_read, rows_accepted, rows_quarantined FROM ops.ingest_manifest "
            "WHERE file_path = ? AND content_hash = ? AND status = ?",
            [file, sha, LOADED],
        ).fetchone()
        if previous is not None and not recheck:
            report.status = UNCHANGED
            report.rows_read, report.accepted, report.quarantined = previous
            return report
        report.warnings.extend(info.warnings)
        header = read_header(info)
        reject_identifier_columns(path, header.columns)
        report.warnings.extend(check_columns(path, contract, header))
        con.execute("BEGIN TRANSACTION")
        try:
            _load_rows(con, validator, contract, info, header, report, run_id, chunk_bytes)
            _manifest(con, report, size, sha, run_id)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    except FileRejected as exc:
        report = FileReport(
            path=file, table=table, status=REJECTED, message=exc.message, warnings=report.warnings
        )
        con.execute("BEGIN TRANSACTION")
        _manifest(con, report, size, sha, run_id)
        con.execute("COMMIT")
    return report


def _load_rows(
    con: duckdb.DuckDBPyConnection,
    validator: Validator,
    contract: Contract,
    info: FileInfo,
    header: Header,
    report: FileReport,
    run_id: str,
    chunk_bytes: int,
) -> None:
    file, table = report.path, contract.table
    replaced = con.execute(
        "UPDATE ops.ingest_manifest SET status = ? WHERE file_path = ? AND status = ?",
        [REPLACED, file, LOADED],
    ).fetchone()
    if replaced and replaced[0]:
        _remove_rows_of(con, table, file)
    pattern, redaction = identifier_rules().combined_pattern, identifier_rules().redaction
    distinct = DistinctValues(contract)
    for chunk in iter_chunks(info, header, max_bytes=chunk_bytes):
        report.rows_read += chunk.n_read
        reject_five_digit_zip(info.path, chunk.rows)
        scrubbed = scrub(contract, chunk.rows)
        report.redacted += scrubbed.redacted
        report.capped += scrubbed.capped
        distinct.add(scrubbed.rows)
        _write_raw(con, contract, scrubbed.rows, file, run_id)
        # An unparseable line is quarantined as read, but never with an identifier in it.
        bad = chunk.bad_lines
        bad_failures = pa.table(
            {
                "source_row": bad["source_row"],
                "column_name": pa.nulls(bad.num_rows, pa.string()),
                "rule": bad["rule"],
                "value": pc.replace_substring_regex(bad["value"], pattern, redaction),
            }
        )
        _write_quarantine(con, table, bad_failures, file, run_id)
    for failure in validator.validate(contract, distinct):
        _quarantine_failing_values(con, table, failure, file, run_id)
    if report.rows_read == 0:
        report.warnings.append(f"{info.path.name}: a header but no rows")
    _quarantine_spanning_rules(con, contract, file, run_id)
    report.accepted = _stage_accepted(con, contract, file, run_id)
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


def ingest_directory(
    con: duckdb.DuckDBPyConnection,
    input_dir: Path,
    run_id: str,
    *,
    load_date: date | None = None,
    docs_dir: Path | None = None,
    prune: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> IngestSummary:
    """Every canonical file of `input_dir`, intake first (referrals and diagnoses refer to it)."""
    files = discover(input_dir)
    validator = _validator(load_date or date.today(), docs_dir)
    summary = IngestSummary(run_id)
    for table in TABLES:
        recheck = needs_recheck(table, summary.files)
        for path in files[table]:
            summary.files.append(
                ingest_file(
                    con, validator, table, path, run_id, chunk_bytes=chunk_bytes, recheck=recheck
                )
            )
    present = [f.path for f in summary.files]
    summary.pruned, summary.missing = handle_removed_files(con, input_dir, present, prune=prune)
    return summary


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
    details = json.dumps({"ingest": summary.to_dict()})
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


# ---------------------------------------------------------------- entry points for flow and CLI


@cache
def _validator(load_date: date, docs_dir: Path | None) -> Validator:
    """One GX context per process and day: building suites and Checkpoints costs seconds."""
    return Validator(load_date, docs_dir)


def ingest_file_into(
    warehouse: str,
    table: str,
    path: str,
    run_id: str,
    docs_dir: str | None = None,
    load_date: date | None = None,
    recheck: bool = False,
) -> dict:
    """Ingest one file into the warehouse file; a plain-data report (for a Prefect task)."""
    validator = _validator(load_date or date.today(), Path(docs_dir) if docs_dir else None)
    with open_warehouse(warehouse) as con:
        return asdict(ingest_file(con, validator, table, Path(path), run_id, recheck=recheck))


def finish_ingest(
    warehouse: str, input_dir: str, run_id: str, reports: list[dict], *, prune: bool = False
) -> dict:
    """Handle files gone from the input and record the run's counts in ops.run_log."""
    summary = IngestSummary(run_id, [FileReport(**r) for r in reports])
    with open_warehouse(warehouse) as con:
        present = [f.path for f in summary.files]
        summary.pruned, summary.missing = handle_removed_files(
            con, Path(input_dir), present, prune=prune
        )
        record_run(con, summary, Path(input_dir))
    return summary.to_dict()


def validate_directory(
    input_dir: Path, *, docs_dir: Path | None = None, load_date: date | None = None
) -> IngestSummary:
    """`redflags validate`: the whole ingest stage against a throw-away in-memory warehouse."""
    run_id = "validate-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    con = duckdb.connect()
    try:
        create_schemas(con)
        return ingest_directory(con, input_dir, run_id, load_date=load_date, docs_dir=docs_dir)
    finally:
        con.close()
