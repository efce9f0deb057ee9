"""The `redflags run` flow: the stages wired as Prefect tasks around plain functions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, task

from pipelines import ingest
from pipelines.contracts import TABLES
from pipelines.errors import UserError
from pipelines.sources.canonical import discover
from pipelines.warehouse import open_warehouse, table_counts


def retry_unless_user_error(task, task_run, state) -> bool:
    """Retry I/O failures; bad input fails the same way every time, so it is not retried."""
    try:
        state.result()
    except UserError:
        return False
    except Exception:
        return True
    return True


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


@task
def find_input_files(input_dir: str) -> dict[str, list[str]]:
    """The canonical files of the input directory, by table."""
    return {table: [str(p) for p in paths] for table, paths in discover(input_dir).items()}


# One file in, validated and split into staging and quarantine; the report is plain data.
ingest_file = task(
    ingest.ingest_file_into,
    name="ingest_file",
    retries=2,
    retry_delay_seconds=[1, 5],
    retry_condition_fn=retry_unless_user_error,
)
record_ingest = task(ingest.finish_ingest, name="record_ingest")


@task
def count_raw_rows(warehouse: str) -> dict[str, int]:
    with open_warehouse(warehouse) as con:
        return {t: n for t, n in table_counts(con, "raw").items() if t in TABLES}


@flow(name="redflags-run", log_prints=True)
def redflags_run(
    input_dir: str, warehouse: str, docs_dir: str | None = None, prune: bool = False
) -> dict:
    """Run the whole pipeline once.

    Steps:
    1. find_input_files: canonical files `intake*`, `referrals*`, `diagnoses*` of the input
    2. ingest_file, per file, intake first (referrals and diagnoses must name known
       patients): read in chunks, scrub identifiers, validate with the GX suites,
       raw.<table> + quarantine.<table> + staging.<table>, ops.ingest_manifest
    3. record_ingest: files gone from the input (kept, or removed with --prune),
       the run's counts in ops.run_log
    """
    run_id = new_run_id()
    warehouse = str(Path(warehouse))
    files = find_input_files(str(Path(input_dir)))
    reports = [
        ingest_file(warehouse, table, path, run_id, docs_dir)
        for table in TABLES
        for path in files[table]
    ]
    summary = record_ingest(warehouse, str(Path(input_dir)), run_id, reports, prune=prune)
    return {"run_id": run_id, "ingest": summary, "raw": count_raw_rows(warehouse)}
