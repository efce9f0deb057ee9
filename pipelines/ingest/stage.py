"""The ingest stage's one loop, for both callers, and what they call it with.

`redflags validate` runs it against a throw-away in-memory warehouse, the flow against
the warehouse with its prepare steps on Prefect's task runner (threads or Dask). They
differ only in who runs a prepare.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol

import duckdb

from pipelines.config import DEFAULT_DATE_MIN, DEFAULT_DOCS_KEEP, DEFAULT_FUTURE_DATES
from pipelines.console import progress
from pipelines.contracts import TABLES
from pipelines.ingest.files import discover, survey
from pipelines.ingest.load import (
    clear_work,
    handle_removed_files,
    load_file,
    loaded_hashes,
    needs_recheck,
    record_run,
    run_work_dir,
)
from pipelines.ingest.prepare import PreparedFile, prepare_file
from pipelines.ingest.readers import DEFAULT_CHUNK_BYTES
from pipelines.ingest.summary import (
    LOADED,
    PRUNED,
    REJECTED,
    REPLACED,
    UNCHANGED,
    FileReport,
    IngestSummary,
    format_summary,
)
from pipelines.validation.docs import write_validation_docs

__all__ = [
    "LOADED",
    "PRUNED",
    "REJECTED",
    "REPLACED",
    "UNCHANGED",
    "FileReport",
    "IngestSummary",
    "PreparedFile",
    "clear_work",
    "discover",
    "finish_ingest",
    "format_summary",
    "ingest_directory",
    "ingest_files",
    "load_file",
    "loaded_hashes",
    "prepare_file",
    "run_work_dir",
    "validate_directory",
]


class Pending(Protocol):
    """Work under way: a concurrent.futures Future or a Prefect future."""

    def result(self): ...


# How a caller runs one prepare: (table, path, content hash as loaded or None) -> pending.
Prepare = Callable[[str, str, "str | None"], Pending]


def resolved(path: str | Path) -> str:
    """A file's path as the manifest records it."""
    return str(Path(path).resolve())


def ingest_files(
    files: dict[str, list[str]],
    *,
    known: dict[str, str],
    prepare: Prepare,
    load: Callable[[PreparedFile], FileReport],
) -> list[FileReport]:
    """Prepare every file at once, then load them one by one, intake first.

    `prepare` starts a file's prepare wherever the caller runs them (a thread beside
    the loads, or Dask workers) and `load` stores a prepared file (the single writer,
    in this process). Referrals and diagnoses are checked against the patients of
    intake, so they load after it, and an unchanged one is prepared again (a recheck)
    when intake changed in this run. `known` holds the content hash of each file as
    last loaded: a file that still has it is unchanged and read no further.

    Each report carries the expectations its prepare evaluated, wherever it ran, for
    the validation pages the caller writes once the files are loaded.
    """
    pending = {
        table: [prepare(table, path, known.get(resolved(path))) for path in files[table]]
        for table in TABLES
    }
    reports: list[FileReport] = []
    for table in TABLES:  # intake first: the others are checked against its patients
        recheck = needs_recheck(table, reports)
        for path, future in zip(files[table], pending[table], strict=True):
            name = Path(path).name
            progress(f"reading and validating {name} ({table})\u2026")
            ready = future.result()
            if recheck and ready.report.status == UNCHANGED:
                progress(f"checking {name} again: intake changed\u2026")
                ready = prepare(table, path, None).result()
            if ready.report.status == LOADED:
                rows = ready.report.rows_read
                progress(f"loading {rows:,} row{'' if rows == 1 else 's'} of {name}\u2026")
            reports.append(load(ready))
    return reports


def finish_ingest(
    con: duckdb.DuckDBPyConnection,
    input_dir: str | Path,
    run_id: str,
    reports: list[FileReport],
    *,
    prune: bool = False,
) -> IngestSummary:
    """Handle files gone from the input and record the run's counts in ops.run_log, with
    the entries of the input directory that were not read."""
    summary = IngestSummary(run_id, list(reports), skipped=survey(input_dir).skipped)
    present = [f.path for f in summary.files]
    summary.pruned, summary.missing = handle_removed_files(
        con, Path(input_dir), present, prune=prune
    )
    record_run(con, summary, Path(input_dir))
    return summary


def ingest_directory(
    con: duckdb.DuckDBPyConnection,
    input_dir: str | Path,
    run_id: str,
    *,
    load_date: date | None = None,
    docs_dir: Path | None = None,
    docs_keep: int = DEFAULT_DOCS_KEEP,
    prune: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    date_min: date = DEFAULT_DATE_MIN,
    date_max: date | None = None,
    future_dates: str = DEFAULT_FUTURE_DATES,
) -> IngestSummary:
    """The ingest stage in this process against `con`: prepares in a thread beside the
    loads, in a temporary work directory; files gone from the input are kept or pruned.
    With `docs_dir`, the run's validation pages are written there (the last `docs_keep`
    runs kept)."""
    found = survey(input_dir)
    files = {table: [str(p) for p in paths] for table, paths in found.found.items()}
    with (
        tempfile.TemporaryDirectory(prefix="redflags-work-") as work,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") as pool,
    ):

        def prepare(table: str, path: str, loaded_hash: str | None) -> Future[PreparedFile]:
            return pool.submit(
                prepare_file,
                table,
                path,
                work,
                loaded_hash=loaded_hash,
                load_date=load_date,
                chunk_bytes=chunk_bytes,
                date_min=date_min,
                date_max=date_max,
                future_dates=future_dates,
            )

        reports = ingest_files(
            files,
            known=loaded_hashes(con),
            prepare=prepare,
            load=lambda prepared: load_file(con, prepared, run_id),
        )
    summary = IngestSummary(run_id, reports, skipped=found.skipped)
    present = [f.path for f in summary.files]
    summary.pruned, summary.missing = handle_removed_files(
        con, Path(input_dir), present, prune=prune
    )
    if docs_dir is not None:
        write_validation_docs(con, docs_dir, summary, keep=docs_keep)
    return summary


def validate_directory(
    input_dir: Path,
    *,
    docs_dir: Path | None = None,
    docs_keep: int = DEFAULT_DOCS_KEEP,
    load_date: date | None = None,
    date_min: date = DEFAULT_DATE_MIN,
    date_max: date | None = None,
    future_dates: str = DEFAULT_FUTURE_DATES,
) -> IngestSummary:
    """`redflags validate`: the whole ingest stage against a throw-away in-memory warehouse,
    its validation pages written to `docs_dir` like a run's."""
    from pipelines.warehouse import create_schemas

    run_id = "validate-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    con = duckdb.connect()
    try:
        create_schemas(con)
        return ingest_directory(
            con,
            input_dir,
            run_id,
            load_date=load_date,
            docs_dir=docs_dir,
            docs_keep=docs_keep,
            date_min=date_min,
            date_max=date_max,
            future_dates=future_dates,
        )
    finally:
        con.close()
