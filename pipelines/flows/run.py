"""The `redflags run` flow: the stages wired as Prefect tasks around plain functions."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, task

from pipelines import ingest
from pipelines.contracts import TABLES
from pipelines.errors import UserError
from pipelines.report import write_report as write_report_file
from pipelines.sources.adapters import CANONICAL, adapter, converted_dir
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


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_unless_user_error)
def build_cohorts(warehouse: str, run_id: str) -> dict[str, int]:
    """Index presentations, outcomes and every mart, built into the scratch schema."""
    from pipelines.cohorts.build import build_cohorts as build
    from pipelines.warehouse import connect

    con = connect(warehouse)
    try:
        return build(con)["marts"]
    finally:
        con.close()


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_unless_user_error)
def publish_marts(warehouse: str, run_id: str) -> dict[str, int]:
    """Replace marts.* with this run's build in one transaction; log the run."""
    from pipelines.cohorts.build import publish_marts as publish
    from pipelines.warehouse import connect

    con = connect(warehouse)
    try:
        return publish(con, run_id)
    finally:
        con.close()


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_unless_user_error)
def export_extracts(warehouse: str, run_id: str, out_dir: str) -> dict[str, int]:
    """Suppressed Parquet extracts of the published marts for researchers."""
    from pipelines.cohorts.export import export

    manifest = export(warehouse, out_dir)
    return {item["path"]: item["rows"] for item in manifest["files"]}


def cohort_stages(warehouse: str, run_id: str, export_dir: str | None = None) -> dict:
    """The cohort end of the flow: build, publish, and (when asked) export.

    Called at the end of `redflags_run`, after the scoring task has written
    features.presentation_flags.
    """
    built = build_cohorts(warehouse, run_id)
    result: dict[str, object] = {"built": built, "marts": publish_marts(warehouse, run_id)}
    if export_dir is not None:
        result["export"] = export_extracts(warehouse, run_id, export_dir)
    return result


@flow(name="redflags-run", log_prints=True)
def redflags_run(
    input_dir: str,
    warehouse: str,
    source: str = CANONICAL,
    docs_dir: str | None = None,
    prune: bool = False,
    engine: str = "duckdb",
) -> dict:
    """Run the whole pipeline once.

    Steps:
    0. convert_source (omop, fhir only): source folder -> canonical Parquet files
    1. find_input_files: canonical files `intake*`, `referrals*`, `diagnoses*` of the input
    2. ingest_file, per file, intake first (referrals and diagnoses must name known
       patients): read in chunks, scrub identifiers, validate with the GX suites,
       raw.<table> + quarantine.<table> + staging.<table>, ops.ingest_manifest
    3. record_ingest: files gone from the input (kept, or removed with --prune),
       the run's counts in ops.run_log
    4. score_presentations: staging.intake -> features.presentation_flags
    5. build_cohorts: index presentations, outcomes, marts into a scratch schema
    6. publish_marts: marts.* replaced in one transaction, ops.run_log updated
    7. write_report: marts.* and ops.* -> report.html beside the warehouse (last)
    """
    run_id = new_run_id()
    warehouse = str(Path(warehouse))
    source_report = None
    if source != CANONICAL:
        input_dir, source_report = convert_source(source, str(Path(input_dir)), warehouse)
    files = find_input_files(str(Path(input_dir)))
    reports = [
        ingest_file(warehouse, table, path, run_id, docs_dir)
        for table in TABLES
        for path in files[table]
    ]
    summary = record_ingest(warehouse, str(Path(input_dir)), run_id, reports, prune=prune)
    result: dict[str, object] = {
        "run_id": run_id,
        "ingest": summary,
        "raw": count_raw_rows(warehouse),
        "source_report": source_report,
        "scored": score_presentations(warehouse, engine),
    }
    result |= cohort_stages(warehouse, run_id)
    result["report"] = write_report(warehouse, run_id)
    return result
