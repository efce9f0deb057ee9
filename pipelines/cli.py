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
from pipelines.paths import DEFAULT_WAREHOUSE, SAMPLE_DIR

app = typer.Typer(
    name="redflags",
    help="Score back-pain presentations for red flags and build referral cohorts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

InputDir = Annotated[
    Path, typer.Option("--input", "-i", help="Directory of canonical input files.")
]
WarehousePath = Annotated[Path, typer.Option("--warehouse", "-w", help="DuckDB warehouse file.")]


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
    input_dir: InputDir = SAMPLE_DIR,
    warehouse: WarehousePath = DEFAULT_WAREHOUSE,
) -> None:
    """Run the whole pipeline (a Prefect flow) on INPUT into the WAREHOUSE."""
    from pipelines.flows.prefect_env import configure_prefect
    from pipelines.sources.canonical import discover

    discover(input_dir)  # bad arguments fail here, in one line, before Prefect starts
    configure_prefect()
    from pipelines.flows.run import redflags_run

    result = redflags_run(input_dir=str(input_dir), warehouse=str(warehouse))
    typer.echo(f"run {result['run_id']}: {input_dir} -> {warehouse}")
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
