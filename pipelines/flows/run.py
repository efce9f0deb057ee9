"""The `redflags run` flow: a recipe that wires the stages' plain functions.

Tasks are verbs and pass paths and table names, never DataFrames. Adding a stage is one
line in `redflags_run`: call its task inside the writer block and store what it returns
under its key of the summary (see pipelines/flows/summary.py for the keys it reports).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from pipelines import resources
from pipelines.config import (
    DEFAULT_DATE_MIN,
    DEFAULT_DOCS_KEEP,
    DEFAULT_FUTURE_DATES,
    DEFAULT_MAX_QUARANTINE_SHARE,
    DEFAULT_MEMORY_LIMIT,
)
from pipelines.console import progress
from pipelines.contracts import TABLES
from pipelines.errors import UserError, disk_full_stops
from pipelines.flows.prefect_env import TemporaryServer, prefect_api
from pipelines.flows.summary import (
    headline_numbers,
    headline_rows,
    released_numbers,
    summary_markdown,
    validation_numbers,
)
from pipelines.ingest import guard
from pipelines.ingest import stage as ingest
from pipelines.ingest.guard import require_input_files
from pipelines.ingest.stage import FileReport, IngestSummary, PreparedFile
from pipelines.report import write_report as write_report_file
from pipelines.report.render import default_report_path
from pipelines.sources.adapters import CANONICAL, adapter, converted_dir
from pipelines.warehouse import (
    discard,
    open_warehouse,
    rebuild_path,
    swap_in,
    table_counts,
    writer,
)


def retry_unless_user_error(task, task_run, state) -> bool:
    """Retry I/O failures; bad input fails the same way every time, so it is not retried,
    and neither is a full disk (`disk_full_stops` makes it a UserError): only someone
    freeing space ends it, and retrying would hold the run for minutes."""
    try:
        state.result()
    except UserError:
        return False
    except Exception:
        return True
    return True


# I/O can fail for passing reasons (a file being copied in, a network share reconnecting):
# three more tries, 2 s, 4 s, 8 s apart, with jitter so parallel tasks do not retry in step.
IO_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_unless_user_error,
}


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


@task(**IO_RETRIES)
def convert_source(source: str, input_dir: str, warehouse: str) -> tuple[str, dict]:
    """Convert an OMOP or FHIR input into canonical files beside the warehouse.

    Returns the converted directory (the ingest reads it instead of the input) and
    the adapter's counts of what it mapped, left unmapped and rejected.
    """
    out_dir = converted_dir(warehouse, source)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    with disk_full_stops(out_dir):
        report = adapter(source).convert(Path(input_dir), out_dir)
    return str(out_dir), report.as_dict()


@task(**IO_RETRIES)
def record_unmapped_codes(warehouse: str, run_id: str, report: dict, min_cell: int) -> None:
    """The adapter's top unmapped codes into ops.unmapped_codes and a table artifact."""
    from pipelines.sources.report import record_unmapped_codes as record
    from pipelines.sources.report import unmapped_code_rows

    with open_warehouse(warehouse) as con:
        record(con, run_id, report)
    rows = unmapped_code_rows(report, min_cell)
    if rows:
        create_table_artifact(
            rows, key="redflags-unmapped-codes", description="Top unmapped source codes"
        )


@task(**IO_RETRIES)
def find_input_files(input_dir: str) -> dict[str, list[str]]:
    """The canonical files of the input directory, by table; none at all stops the run."""
    found = {table: [str(p) for p in paths] for table, paths in ingest.discover(input_dir).items()}
    require_input_files(found, input_dir)
    return found


@task
def check_ingest(
    warehouse: str, input_dir: str, summary: IngestSummary, max_quarantine_share: float
) -> None:
    """Stop before scoring when a file is mostly quarantined or no intake row is stored
    (pipelines/ingest/guard.py): the marts stay those of the last good run."""
    with open_warehouse(warehouse) as con:
        guard.check_ingest(con, summary, input_dir, max_quarantine_share)


@task(**IO_RETRIES)
def prepare_file(
    table: str,
    path: str,
    work_dir: str,
    loaded_hash: str | None,
    site: str | None,
    date_min: date = DEFAULT_DATE_MIN,
    date_max: date | None = None,
    future_dates: str = DEFAULT_FUTURE_DATES,
) -> PreparedFile:
    """One file in, read, scrubbed and validated into files in the run's work directory.

    Runs on any worker (paths in, paths out), reading the contracts of the run's site;
    an unchanged file (same content hash as loaded in ops.ingest_manifest) stops after
    the hash. The prepared file's report carries the expectations GX evaluated back to
    the flow, which writes the validation pages.
    """
    if resources.active().site != (Path(site) if site else None):
        resources.use_site(Path(site) if site else None)
    with disk_full_stops(work_dir):
        return ingest.prepare_file(
            table,
            path,
            work_dir,
            loaded_hash=loaded_hash,
            date_min=date_min,
            date_max=date_max,
            future_dates=future_dates,
        )


@task(**IO_RETRIES)
def load_file(warehouse: str, prepared: PreparedFile, run_id: str) -> FileReport:
    """The single writer: checks that span files, then raw, quarantine, staging and the
    manifest in one transaction."""
    with disk_full_stops(warehouse), open_warehouse(warehouse) as con:
        return ingest.load_file(con, prepared, run_id)


@task
def record_ingest(
    warehouse: str, input_dir: str, run_id: str, reports: list[FileReport], prune: bool
) -> IngestSummary:
    """Files gone from the input (kept, or removed with prune); the run's counts in ops."""
    with disk_full_stops(warehouse), open_warehouse(warehouse) as con:
        return ingest.finish_ingest(con, input_dir, run_id, reports, prune=prune)


@task(**IO_RETRIES)
def write_validation_docs(
    warehouse: str, docs_dir: str, summary: IngestSummary, keep: int
) -> dict[str, Any]:
    """The run's validation pages (one per file it validated) and the index of every run
    kept, counted from the run's quarantine; returns where they are (`DocsLinks`)."""
    from pipelines.validation.docs import write_validation_docs as write_docs

    progress("writing the validation pages\u2026")
    with disk_full_stops(docs_dir), open_warehouse(warehouse) as con:
        return write_docs(con, docs_dir, summary, keep=keep).as_dict()


@task
def loaded_hashes(warehouse: str) -> dict[str, str]:
    """The content hash of every file as last loaded (ops.ingest_manifest)."""
    with open_warehouse(warehouse) as con:
        return ingest.loaded_hashes(con)


@task
def count_raw_rows(warehouse: str) -> dict[str, int]:
    with open_warehouse(warehouse) as con:
        return {t: n for t, n in table_counts(con, "raw").items() if t in TABLES}


@task(**IO_RETRIES)
def score_presentations(warehouse: str, engine: str = "duckdb") -> int:
    """staging.intake -> features.presentation_flags; the rules version goes to ops."""
    from pipelines.scoring.jobs import score_warehouse

    progress(f"scoring presentations ({engine})\u2026")
    with disk_full_stops(warehouse), open_warehouse(warehouse) as con:
        return score_warehouse(con, engine)


def _definition(windows: list[int] | None):
    from pipelines.cohorts.definition import load_definition

    definition = load_definition()
    return definition if windows is None else replace(definition, windows=tuple(windows))


@task(**IO_RETRIES)
def build_cohorts(warehouse: str, windows: list[int] | None = None) -> dict[str, int]:
    """Index presentations, outcomes and every mart, built into the scratch schema."""
    from pipelines.cohorts.build import build_cohorts as build

    progress("building cohorts and marts\u2026")
    with disk_full_stops(warehouse), open_warehouse(warehouse) as con:
        return build(con, definition=_definition(windows))["marts"]


@task(**IO_RETRIES)
def publish_marts(
    warehouse: str, run_id: str, windows: list[int] | None = None, min_cell: int = 11
) -> dict[str, int]:
    """Replace marts.* with this run's build and make their release
    (pipelines/disclosure/release.py), which every output reads, in one transaction;
    log the run."""
    from pipelines.cohorts.build import publish_marts as publish

    progress(f"publishing the marts and auditing their release (k = {min_cell})\u2026")
    with disk_full_stops(warehouse), open_warehouse(warehouse) as con:
        return publish(con, run_id, definition=_definition(windows), min_cell=min_cell)


@task(**IO_RETRIES)
def publish_copy(warehouse: str, published_for: str, run_id: str) -> str:
    """Write the published copy that readers open (pipelines/published.py) from the
    marts and release just published, and swap it in by rename.

    `published_for` is the warehouse the copy belongs beside: a rebuild publishes from
    the new file it builds under another name.
    """
    from pipelines.published import published_path, write_copy

    progress("writing the published copy for readers\u2026")
    with disk_full_stops(published_path(published_for)), open_warehouse(warehouse) as con:
        return str(write_copy(con, published_for, run_id))


@task(**IO_RETRIES)
def export_extracts(warehouse: str, out_dir: str) -> dict[str, int]:
    """Suppressed Parquet extracts of the published copy's release for researchers."""
    from pipelines.cohorts.export import export

    progress(f"exporting extracts to {out_dir}\u2026")
    with disk_full_stops(out_dir):
        manifest = export(warehouse, out_dir, replace=True)
    return {item["path"]: item["rows"] for item in manifest["files"]}


@task
def collect_headlines(warehouse: str) -> dict[str, Any]:
    """Tier mix, index presentations, care gaps and headline referral rates, for the
    operator's summary (from the marts), and the same from the release for the artifacts."""
    with open_warehouse(warehouse) as con:
        return headline_numbers(con) | {"released": released_numbers(con)}


@task(**IO_RETRIES)
def write_report(warehouse: str, run_id: str, docs_index: str | None = None) -> str:
    """Write the HTML report beside the warehouse, from the published copy this run made,
    linking to the validation pages' index."""
    progress("writing the report\u2026")
    with disk_full_stops(default_report_path(warehouse)):
        return str(write_report_file(warehouse, run_id=run_id, docs_index=docs_index))


@task
def publish_run_artifacts(summary: dict[str, Any]) -> None:
    """The run's markdown summary and headline table, and links to its HTML report and
    its Data Docs, shown in the Prefect UI.

    The links are file:// URLs: the files are on the machine that ran the flow, where
    whoever reads the UI beside it opens them.
    """
    create_markdown_artifact(
        summary_markdown(summary), key="redflags-run-summary", description="What this run did"
    )
    create_table_artifact(
        headline_rows(summary), key="redflags-headline-numbers", description="Headline numbers"
    )
    if summary.get("report"):
        create_link_artifact(
            Path(summary["report"]).resolve().as_uri(),
            link_text="HTML report",
            key="redflags-report",
            description="The run's HTML report (a file on the machine that ran it)",
        )
    if summary.get("docs"):  # the index of the validation pages, which lists every run's
        create_link_artifact(
            Path(summary["docs"]["index"]).resolve().as_uri(),
            link_text="Data Docs",
            key="redflags-data-docs",
            description="The validation pages of the run's files: rows read and quarantined",
        )


def ingest_stage(
    warehouse: str,
    files: dict[str, list[str]],
    run_id: str,
    site: str | None,
    date_min: date = DEFAULT_DATE_MIN,
    date_max: date | None = None,
    future_dates: str = DEFAULT_FUTURE_DATES,
) -> list[FileReport]:
    """The ingest loop on the flow's task runner: prepares submitted to it, loads here.

    The default runner works through the prepares one at a time in a thread beside the
    loads; a Dask runner spreads them over its workers, whose prepared files bring
    their reports (and the expectations GX evaluated) back to this process. The work
    directory holds this run's prepared files; what a crashed run left is removed first,
    and a failed ingest (a full disk above all) removes its own once the prepares under
    way have stopped.
    """
    ingest.clear_work(warehouse)
    work = str(ingest.run_work_dir(warehouse, run_id))
    submitted: list[PrefectFuture] = []

    def prepare(table: str, path: str, loaded_hash: str | None):
        future = prepare_file.submit(
            table,
            path,
            work,
            loaded_hash,
            site,
            date_min=date_min,
            date_max=date_max,
            future_dates=future_dates,
        )
        submitted.append(future)
        return future

    try:
        return ingest.ingest_files(
            files,
            known=loaded_hashes(warehouse),
            prepare=prepare,
            load=lambda prepared: load_file(warehouse, prepared, run_id),
        )
    finally:
        wait(submitted)  # a prepare still writing would leave its files behind
        ingest.clear_work(warehouse)


# Without Dask, prepare tasks run one at a time in a thread beside the loads: the files
# are read while the previous one is written, in bounded memory.
@flow(name="redflags-run", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def redflags_run(
    input_dir: str,
    warehouse: str,
    source: str = CANONICAL,
    engine: str = "duckdb",
    windows: list[int] | None = None,
    min_cell: int = 11,
    export_dir: str | None = None,
    lock_timeout: float = 300.0,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    docs_dir: str | None = None,
    docs_keep: int = DEFAULT_DOCS_KEEP,
    prune: bool = False,
    site: str | None = None,
    rebuild: bool = False,
    date_min: date = DEFAULT_DATE_MIN,
    date_max: date | None = None,
    max_quarantine_share: float = DEFAULT_MAX_QUARANTINE_SHARE,
    future_dates: str = DEFAULT_FUTURE_DATES,
) -> dict[str, Any]:
    """Run the whole pipeline once, with the files of `site` where it has its own.

    With `rebuild`, steps 1-8 write a new warehouse file beside the old one (which they
    never open: it may be damaged), and the new file takes the old one's place by
    rename once its published copy is in place (step 9), after the report; the old
    file is kept as `<warehouse>.damaged`.

    Steps:
    1. wait for the warehouse's writer lock (bounded by lock_timeout), after reading
       every block of the file to make sure it is not damaged; holding it:
    2. convert_source (omop, fhir only): source folder -> canonical Parquet files
    3. find_input_files: canonical files `intake*`, `referrals*`, `diagnoses*`, `patients*`;
       none at all stops the run (exit code 65)
    4. prepare_file, per file: skip if unchanged (content hash), read in chunks, scrub
       identifiers, validate with the GX suites -> files in the run's work directory;
       then load_file, per file, intake first (referrals and diagnoses must name known
       patients): the checks that span files -> raw, quarantine and staging tables,
       ops.ingest_manifest
    5. record_ingest: files gone from the input (kept, or removed with prune),
       the run's counts in ops.run_log; write_validation_docs (with docs_dir): a page
       per file validated, counted from the quarantine, the last docs_keep runs kept;
       check_ingest: a file quarantined above max_quarantine_share, or no intake row,
       stops the run here (exit code 65), before anything is scored or published
    6. score_presentations: staging.intake -> features.presentation_flags
    7. build_cohorts: index presentations, outcomes, marts into a scratch schema
    8. publish_marts: marts.* replaced in one transaction, ops.run_log updated
    9. publish_copy: marts, release and ops -> `<warehouse stem>.published.duckdb`,
       swapped in by rename; readers open it, never the warehouse
    10. export_extracts (when export_dir is given): suppressed Parquet for researchers
    11. write_report: the published copy -> report.html beside the warehouse
    12. publish_run_artifacts: markdown summary, headline table and links to the report
        and the Data Docs in Prefect

    Everything happens under the lock up to the report, so that no other run's
    publication comes between this run's copy and what the export and the report
    read from it. Readers outside the run never wait for the lock.
    """
    resources.use_site(Path(site) if site else None)
    warehouse = str(Path(warehouse).resolve())
    run_id = new_run_id()
    summary: dict[str, Any] = {"run_id": run_id, "input_dir": input_dir, "warehouse": warehouse}
    summary["source_report"] = None
    target = str(rebuild_path(warehouse)) if rebuild else warehouse
    if rebuild:
        discard(target)  # what an interrupted rebuild left

    try:
        with writer(target, lock_timeout, memory_limit=memory_limit):
            if source != CANONICAL:
                input_dir, summary["source_report"] = convert_source(source, input_dir, target)
                record_unmapped_codes(target, run_id, summary["source_report"], min_cell)
            files = find_input_files(input_dir)
            reports = ingest_stage(target, files, run_id, site, date_min, date_max, future_dates)
            summary["ingest"] = record_ingest(target, input_dir, run_id, reports, prune)
            summary["docs"] = (
                write_validation_docs(target, docs_dir, summary["ingest"], docs_keep)
                if docs_dir
                else None
            )
            check_ingest(target, input_dir, summary["ingest"], max_quarantine_share)
            summary["validation"] = validation_numbers(summary["ingest"])
            summary["raw"] = count_raw_rows(target)
            summary["scored"] = score_presentations(target, engine)
            summary["built"] = build_cohorts(target, windows)
            summary["marts"] = publish_marts(target, run_id, windows, min_cell)
            summary |= collect_headlines(target)
            summary["published"] = publish_copy(target, warehouse, run_id)
            if export_dir:
                summary["export"] = export_extracts(warehouse, export_dir)
            docs_index = summary["docs"]["index"] if summary["docs"] else None
            summary["report"] = write_report(warehouse, run_id, docs_index)
    finally:
        # A rebuilt warehouse whose copy readers already see takes the old one's place,
        # even if the export or the report failed after; one that got no further is removed.
        if rebuild and "published" in summary:
            kept = swap_in(target, warehouse)
            summary["rebuilt"] = {"damaged_kept_as": str(kept) if kept else None}
        elif rebuild:
            discard(target)

    publish_run_artifacts(summary)
    return summary


# ---------------------------------------------------------------- scale-out


def dask_runner(workers: int = 0, dask_address: str | None = None):
    """The Dask task runner for the prepare tasks, or None to run everything here.

    `workers` > 0: a temporary local cluster of that many single-threaded worker
    processes, started for the run and closed after it. `dask_address`: a running
    scheduler, whose workers must see the input files and the warehouse's directory.
    """
    if not workers and not dask_address:
        return None
    from prefect_dask import DaskTaskRunner

    # Starting and stopping workers is not news; a failed task still fails the run.
    logging.getLogger("distributed").setLevel(logging.ERROR)

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )


def run_pipeline(
    parameters: dict[str, Any],
    *,
    workers: int = 0,
    dask_address: str | None = None,
    server: TemporaryServer | None = None,
) -> dict[str, Any]:
    """Run the flow with `parameters`; on Dask when `workers` or `dask_address` is set.

    `server`: the temporary Prefect server, if the caller started it early
    (`prefect_env.start_prefect_api`); it is waited for, used and stopped.
    """
    runner = dask_runner(workers, dask_address)
    flow_to_run = redflags_run if runner is None else redflags_run.with_options(task_runner=runner)
    with prefect_api(server):
        return flow_to_run(**parameters)
