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
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine", "-e", help="Scoring engine: duckdb or pandas (the same result either way)."
    ),
]


def check_engine(engine: str) -> str:
    from pipelines.scoring import ENGINES

    if engine not in ENGINES:
        raise UserError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}", exit_code=2)
    return engine


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
    engine: EngineOption = "duckdb",
) -> None:
    """Run the whole pipeline (a Prefect flow) on INPUT into the WAREHOUSE."""
    from pipelines.flows.prefect_env import configure_prefect
    from pipelines.sources.canonical import discover

    check_engine(engine)
    discover(input_dir)  # bad arguments fail here, in one line, before Prefect starts
    configure_prefect()
    from pipelines.flows.run import redflags_run

    result = redflags_run(input_dir=str(input_dir), warehouse=str(warehouse), engine=engine)
    typer.echo(f"run {result['run_id']}: {input_dir} -> {warehouse}")
    for table, n in result["raw"].items():
        typer.echo(f"  raw.{table:<10} {n:>10,} rows")
    if result.get("scored") is not None:
        typer.echo(f"  features.presentation_flags {result['scored']:>10,} rows ({engine})")


@app.command()
def score(
    input_file: Annotated[Path, typer.Argument(help="Canonical intake file (.csv or .parquet).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output file; .csv or .parquet picks the format.")
    ],
    engine: EngineOption = "duckdb",
) -> None:
    """Score every presentation of an intake file for red flags (no warehouse needed).

    Writes the columns of features.presentation_flags: effective flags, history
    features, tier, score, completeness and rules_version.
    """
    from pipelines.scoring.jobs import score_file

    n = score_file(input_file, out, check_engine(engine), progress=echo_err)
    typer.echo(f"scored {n:,} presentations: {input_file} -> {out}")


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
