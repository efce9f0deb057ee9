"""The `redflags run` flow."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, task

from pipelines.contracts import TABLES
from pipelines.errors import UserError
from pipelines.report import write_report as write_report_file
from pipelines.sources.adapters import CANONICAL, adapter, converted_dir
from pipelines.sources.canonical import discover, load_raw_file
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


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_unless_user_error)
def ingest_raw(input_dir: str, warehouse: str, run_id: str) -> dict[str, int]:
    """Load every canonical file of the input directory into raw.<table>."""
    files = discover(input_dir)
    with open_warehouse(warehouse) as con:
        con.execute("BEGIN TRANSACTION")
        for table in TABLES:
            con.execute(f"DELETE FROM raw.{table}")
            for path in files[table]:
                load_raw_file(con, table, path, run_id)
        con.execute("COMMIT")
        return {t: n for t, n in table_counts(con, "raw").items() if t in TABLES}


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_unless_user_error)
def convert_source(source: str, input_dir: str, warehouse: str) -> tuple[str, dict]:
    """Convert an OMOP or FHIR input into canonical files beside the warehouse.

    Returns the converted directory (the ingest reads it instead of the input) and
    the adapter's counts of what it mapped, left unmapped and rejected.
    """
    out_dir = converted_dir(warehouse, source)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    report = adapter(source).convert(Path(input_dir), out_dir)
    return str(out_dir), report.as_dict()


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_unless_user_error)
def score_presentations(warehouse: str, engine: str = "duckdb") -> int:
    """staging.intake -> features.presentation_flags; the rules version goes to ops."""
    from pipelines.scoring.jobs import score_warehouse

    with open_warehouse(warehouse) as con:
        return score_warehouse(con, engine)


@task
def write_report(warehouse: str, run_id: str) -> str:
    """Write the HTML report beside the warehouse, from the marts this run published."""
    return str(write_report_file(warehouse, run_id=run_id))


@flow(name="redflags-run", log_prints=True)
def redflags_run(
    input_dir: str, warehouse: str, source: str = CANONICAL, engine: str = "duckdb"
) -> dict[str, object]:
    """Run the whole pipeline once.

    Steps:
    0. convert_source (omop, fhir only): source folder -> canonical Parquet files
    1. ingest_raw: canonical files -> raw.intake, raw.referrals, raw.diagnoses
    2. score_presentations: staging.intake -> features.presentation_flags
    3. write_report: marts.* and ops.* -> report.html beside the warehouse (last)
    """
    run_id = new_run_id()
    source_report = None
    if source != CANONICAL:
        input_dir, source_report = convert_source(source, str(Path(input_dir)), warehouse)
    raw = ingest_raw(str(Path(input_dir)), str(Path(warehouse)), run_id)
    scored = score_presentations(str(Path(warehouse)), engine)
    report = write_report(str(Path(warehouse)), run_id)
    return {
        "run_id": run_id,
        "raw": raw,
        "source_report": source_report,
        "scored": scored,
        "report": report,
    }
