"""The `redflags` console command.

Heavy libraries (pandas, DuckDB, Prefect, GX) are imported inside the commands,
so `--help` and the light commands start fast. Only `run` and `serve` start Prefect.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pipelines.errors import UserError

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
        },
    )
    discover(settings.input_dir)  # bad arguments fail here, in one line, before Prefect starts
    configure_prefect()
    from pipelines.flows.deployments import configured_flow, flow_parameters
    from pipelines.flows.prefect_env import drop_user_error_tracebacks

    drop_user_error_tracebacks()

    result = configured_flow(settings)(**flow_parameters(settings))
    typer.echo(f"run {result['run_id']}: {settings.input_dir} -> {settings.warehouse}")
    for table, n in result["raw"].items():
        typer.echo(f"  raw.{table:<10} {n:>10,} rows")


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
