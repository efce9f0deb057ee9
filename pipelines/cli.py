"""The `redflags` console command.

Heavy libraries (pandas, DuckDB, Prefect, GX) are imported inside the commands,
so `--help` and the light commands start fast. Only `run` and `serve` start Prefect.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from pipelines.errors import UserError
from pipelines.paths import DEFAULT_WAREHOUSE
from pipelines.sources.adapters import CANONICAL, SOURCE_KINDS, adapter

app = typer.Typer(
    name="redflags",
    help="Score back-pain presentations for red flags and build referral cohorts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

InputDir = Annotated[
    Path | None,
    typer.Option("--input", "-i", help="Directory of input files.", show_default="data/sample"),
]
WarehousePath = Annotated[
    Path | None,
    typer.Option("--warehouse", "-w", help="Warehouse file.", show_default="data/warehouse.duckdb"),
]
ConfigPath = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Settings file.", show_default="./redflags.toml if present"
    ),
]
EngineOption = Annotated[
    str | None,
    typer.Option("--engine", help="Scoring engine: pandas or duckdb.", show_default="duckdb"),
]
LockTimeout = Annotated[
    float | None,
    typer.Option(
        "--lock-timeout", help="Seconds to wait while the warehouse is busy.", show_default="300"
    ),
]
Workers = Annotated[
    int | None,
    typer.Option("--workers", help="Convert files on a local Dask cluster of N workers."),
]
DaskAddress = Annotated[
    str | None,
    typer.Option("--dask-address", help="Convert files on an existing Dask scheduler (tcp://...)."),
]
# The choices of --source, from the adapters registry (typer validates an Enum).
SourceChoice = Enum("SourceChoice", {kind: kind for kind in SOURCE_KINDS}, type=str)
SourceKind = Annotated[
    SourceChoice | None,
    typer.Option(
        "--source",
        "-s",
        help="Kind of INPUT: canonical files, an OMOP CDM folder, or FHIR R4 Bundles/NDJSON.",
        show_default=CANONICAL,
    ),
]


@app.callback()
def _root() -> None:
    """Score back-pain presentations for red flags and build referral cohorts.

    Start with `redflags run` (the whole pipeline on data/sample/), then
    `redflags query` to look at the results.
    """


def echo_err(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def run(
    input_dir: InputDir = None,
    warehouse: WarehousePath = None,
    config: ConfigPath = None,
    engine: EngineOption = None,
    lock_timeout: LockTimeout = None,
    workers: Workers = None,
    dask_address: DaskAddress = None,
    source: SourceKind = None,
) -> None:
    """Run the whole pipeline (a Prefect flow) on INPUT into the WAREHOUSE.

    Settings come from redflags.toml, then REDFLAGS_* variables, then these options
    (see docs/configuration.md). A busy warehouse is waited for up to --lock-timeout
    seconds; giving up exits with code 75.
    """
    from pipelines.config import load_settings
    from pipelines.flows.prefect_env import configure_prefect
    from pipelines.sources.canonical import discover

    settings = load_settings(
        config,
        {
            "input_dir": input_dir,
            "warehouse": warehouse,
            "engine": engine,
            "lock_timeout": lock_timeout,
            "workers": workers,
            "dask_address": dask_address,
            "source": None if source is None else source.value,
        },
    )
    # Bad arguments fail here, in one line, before Prefect starts.
    if settings.source == CANONICAL:
        discover(settings.input_dir)
    else:
        adapter(settings.source).check_input(settings.input_dir)
    configure_prefect()
    from pipelines.flows.deployments import configured_flow, flow_parameters
    from pipelines.flows.prefect_env import drop_user_error_tracebacks

    drop_user_error_tracebacks()

    result = configured_flow(settings)(**flow_parameters(settings))
    typer.echo(f"run {result['run_id']}: {settings.input_dir} -> {settings.warehouse}")
    if result.get("source_report"):
        from pipelines.sources.report import summary_lines

        for line in summary_lines(result["source_report"]):
            typer.echo(f"  {line}")
    for table, n in result["raw"].items():
        typer.echo(f"  raw.{table:<10} {n:>10,} rows")
    typer.echo(f"  report         {result['report']}")


@app.command()
def report(
    warehouse: WarehousePath = DEFAULT_WAREHOUSE,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="HTML file to write (default: report.html beside the warehouse)."
        ),
    ] = None,
    min_cell: Annotated[
        int | None,
        typer.Option("--min-cell", help="Suppress counts from 1 to K-1, as the export does."),
    ] = None,
) -> None:
    """Write the HTML report of the WAREHOUSE's marts: one self-contained file."""
    from pipelines.report import write_report

    path = write_report(warehouse, out, min_cell)
    typer.echo(f"report: {path}")


@app.command()
def generate(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Directory to write intake, referrals and diagnoses into (created if missing; "
            "files of the same name are replaced).",
        ),
    ],
    patients: Annotated[
        int, typer.Option("--patients", "-n", help="Number of patients to generate (1 or more).")
    ] = 2000,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", "-s", help="Random seed (0 or more); the same seed gives identical files."
        ),
    ] = 42,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="Output file format: csv or parquet.")
    ] = "csv",
    start: Annotated[
        str, typer.Option("--start", help="First date of presentations (YYYY-MM-DD).")
    ] = "2023-01-01",
    end: Annotated[
        str,
        typer.Option("--end", help="Last date of presentations and referrals (YYYY-MM-DD)."),
    ] = "2025-12-31",
) -> None:
    """Write a synthetic population as canonical intake, referrals and diagnoses files.

    Deterministic: the same options give byte-identical files.
    """
    from datetime import date

    def parse(option: str, value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise UserError(
                f"{option} {value!r} is not a date; write it as YYYY-MM-DD", exit_code=2
            ) from None

    start_date, end_date = parse("--start", start), parse("--end", end)
    from pipelines.synth.generate import check_arguments
    from pipelines.synth.generate import generate as write_population

    check_arguments(out, patients, seed, start_date, end_date, fmt)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("patients", total=patients)
        rows = write_population(
            out,
            patients=patients,
            seed=seed,
            start=start_date,
            end=end_date,
            fmt=fmt,
            progress=lambda n: bar.advance(task, n),
        )
    summary = ", ".join(f"{n:,} {table}" for table, n in rows.items())
    typer.echo(f"generated {patients:,} patients into {out}: {summary} rows ({fmt})")


@app.command()
def serve(config: ConfigPath = None) -> None:
    """Serve the scheduled deployment on a Prefect server until stopped (Ctrl-C).

    Runs the flow nightly (schedule.cron in schedule.timezone of redflags.toml) and
    whenever it is triggered from the Prefect UI or API. Needs PREFECT_API_URL.
    """
    from pipelines.config import load_settings
    from pipelines.flows.prefect_env import configure_prefect

    settings = load_settings(config)
    configure_prefect()
    from pipelines.flows.deployments import DEPLOYMENT_NAME, require_server, serve_deployments

    require_server()
    if settings.workers or settings.dask_address:
        echo_err(
            "redflags: note: the dask settings apply to `redflags run`; served runs use threads"
        )
    typer.echo(
        f"serving redflags-run/{DEPLOYMENT_NAME}: cron '{settings.schedule_cron}' "
        f"({settings.schedule_timezone}), {settings.input_dir} -> {settings.warehouse}"
    )
    serve_deployments(settings)


def main() -> None:
    """Console entry point: user errors become one line on stderr and an exit code."""
    try:
        app()
    except UserError as exc:
        echo_err(f"redflags: error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        echo_err("redflags: interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
