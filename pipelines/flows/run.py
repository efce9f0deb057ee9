"""The `redflags run` flow: a recipe that wires the stages' plain functions.

Tasks are verbs and pass paths and table names, never DataFrames. Adding a stage is one
line in `redflags_run`: call its task inside the writer block and store what it returns
under its key of the summary (see pipelines/flows/summary.py for the keys it reports).
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import TaskRunContext
from prefect.tasks import exponential_backoff

from pipelines.console import progress
from pipelines.contracts import TABLES
from pipelines.errors import UserError
from pipelines.flows.summary import headline_rows, summary_markdown
from pipelines.partitions import (
    Partition,
    load_partitions,
    partition_key,
    partition_path,
    prune_partitions,
    write_partition,
)
from pipelines.report import write_report as write_report_file
from pipelines.sources.adapters import CANONICAL, adapter, converted_dir
from pipelines.sources.canonical import discover
from pipelines.warehouse import open_warehouse, reader, table_counts, writer


def retry_unless_user_error(task, task_run, state) -> bool:
    """Retry I/O failures; bad input fails the same way every time, so it is not retried."""
    try:
        state.result()
    except UserError:
        return False
    except Exception:
        return True
    return True


# I/O can fail for passing reasons (a file being copied in, a full disk being cleared):
# three more tries, 2 s, 4 s, 8 s apart, with jitter so parallel tasks do not retry in step.
IO_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_unless_user_error,
}


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def parts_dir_for(warehouse: str | Path) -> Path:
    """Partitions live beside the warehouse (`<name>.parts/`), on the store workers share."""
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.stem + ".parts")


def partition_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Key convert_file on the file's content hash (and path and contract), never on data."""
    return f"redflags-partition-{partition_key(parameters['table'], parameters['source'])}"


@task(**IO_RETRIES)
def discover_inputs(input_dir: str) -> list[tuple[str, str]]:
    """(table, file) for every input file, in table order then name order."""
    found = discover(input_dir)
    return [(table, str(path.resolve())) for table in TABLES for path in found[table]]


@task(cache_key_fn=partition_cache_key, persist_result=True, **IO_RETRIES)
def convert_file(table: str, source: str, parts_dir: str) -> Partition:
    """Read one input file into its Parquet partition; runs on any worker."""
    progress(f"converting {Path(source).name} ({table})\u2026")
    return write_partition(table, source, parts_dir)


@task(**IO_RETRIES)
def ingest_raw(partitions: list[Partition], warehouse: str, run_id: str) -> dict[str, int]:
    """Replace raw.<table> by this run's partitions, all tables in one transaction."""
    with open_warehouse(warehouse) as con:
        con.execute("BEGIN TRANSACTION")
        for table in TABLES:
            mine = [p for p in partitions if p.table == table]
            rows = sum(p.rows for p in mine)
            progress(f"loading raw.{table}: {len(mine)} file(s), {rows:,} rows\u2026")
            con.execute(f"DELETE FROM raw.{table}")
            load_partitions(con, table, mine, run_id)
        con.execute("COMMIT")
        counts = {t: n for t, n in table_counts(con, "raw").items() if t in TABLES}
    progress("raw tables loaded")
    return counts


@task
def publish_run_artifacts(summary: dict[str, Any]) -> None:
    """The run's markdown summary and headline table, shown in the Prefect UI."""
    create_markdown_artifact(
        summary_markdown(summary), key="redflags-run-summary", description="What this run did"
    )
    create_table_artifact(
        headline_rows(summary), key="redflags-headline-numbers", description="Headline numbers"
    )


def convert_all(inputs: list[tuple[str, str]], parts_dir: str) -> list[Partition]:
    """Convert every file through the flow's task runner (threads, or Dask workers).

    A file whose partition was deleted is converted again and its cache entry refreshed,
    so the cache never hands back a path to nothing.
    """
    missing = [not partition_path(parts_dir, t, s).exists() for t, s in inputs]
    cached = [i for i, m in enumerate(missing) if not m]
    rebuilt = [i for i, m in enumerate(missing) if m]
    futures = {}
    for indices, task_ in (
        (cached, convert_file),
        (rebuilt, convert_file.with_options(refresh_cache=True)),
    ):
        mapped = task_.map(
            [inputs[i][0] for i in indices], [inputs[i][1] for i in indices], parts_dir=parts_dir
        )
        futures.update(zip(indices, mapped, strict=True))
    return [futures[i].result() for i in range(len(inputs))]


@task(**IO_RETRIES)
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


@task(**IO_RETRIES)
def write_report(warehouse: str, run_id: str, lock_timeout: float) -> str:
    """Write the HTML report beside the warehouse, from the marts this run published.

    Waits, like the writers, while another run holds the warehouse.
    """
    with reader(warehouse, lock_timeout):
        return str(write_report_file(warehouse, run_id=run_id))


@flow(name="redflags-run", log_prints=True)
def redflags_run(
    input_dir: str,
    warehouse: str,
    source: str = CANONICAL,
    engine: str = "duckdb",
    windows: list[int] | None = None,
    min_cell: int = 11,
    export_dir: str = "data/exports",
    lock_timeout: float = 300.0,
) -> dict[str, Any]:
    """Run the whole pipeline once.

    Steps:
    1. wait for the warehouse's writer lock (bounded by lock_timeout); holding it:
    2. convert_source (omop, fhir only): source folder -> canonical Parquet files
    3. discover_inputs: the input directory's files, by table
    4. convert_file (one per file, in parallel, cached by content hash): file -> Parquet partition
    5. ingest_raw: partitions -> raw.intake, raw.referrals, raw.diagnoses (one transaction)
    6. prune the partitions of files that changed or went away
    7. write_report: marts.* and ops.* -> report.html beside the warehouse
    8. publish_run_artifacts: markdown summary and headline table in Prefect

    Everything that writes beside or into the warehouse happens under the lock: a run
    waiting for it must not find its converted files or partitions removed by the run
    before it. The report reads the warehouse, so it comes after the lock is released.
    """
    warehouse = str(Path(warehouse).resolve())
    parts_dir = str(parts_dir_for(warehouse))
    summary: dict[str, Any] = {"run_id": new_run_id(), "input_dir": input_dir}
    summary["warehouse"] = warehouse
    summary["source_report"] = None

    with writer(warehouse, lock_timeout):
        if source != CANONICAL:
            input_dir, summary["source_report"] = convert_source(source, input_dir, warehouse)
        inputs = discover_inputs(input_dir)
        partitions = convert_all(inputs, parts_dir)
        summary["raw"] = ingest_raw(partitions, warehouse, summary["run_id"])
        prune_partitions(parts_dir, partitions)
    summary["report"] = write_report(warehouse, summary["run_id"], lock_timeout)

    publish_run_artifacts(summary)
    return summary
