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
from pipelines.paths import DEFAULT_WAREHOUSE, SAMPLE_DIR
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


# The choices of --source, from the adapters registry (typer validates an Enum).
SourceChoice = Enum("SourceChoice", {kind: kind for kind in SOURCE_KINDS}, type=str)
DEFAULT_SOURCE = SourceChoice(CANONICAL)
SourceKind = Annotated[
    SourceChoice,
    typer.Option(
        "--source",
        "-s",
        help="Kind of INPUT: canonical files, an OMOP CDM folder, or FHIR R4 Bundles/NDJSON.",
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
    input_dir: InputDir = SAMPLE_DIR,
    warehouse: WarehousePath = DEFAULT_WAREHOUSE,
    source: SourceKind = DEFAULT_SOURCE,
    engine: EngineOption = "duckdb",
) -> None:
    """Run the whole pipeline (a Prefect flow) on INPUT into the WAREHOUSE."""
    from pipelines.flows.prefect_env import configure_prefect
    from pipelines.sources.canonical import discover

    check_engine(engine)
    source = source.value
    # Bad arguments fail here, in one line, before Prefect starts.
    if source == CANONICAL:
        discover(input_dir)
    else:
        adapter(source).check_input(input_dir)
    configure_prefect()
    from pipelines.flows.run import redflags_run

    result = redflags_run(
        input_dir=str(input_dir), warehouse=str(warehouse), source=source, engine=engine
    )
    typer.echo(f"run {result['run_id']}: {input_dir} -> {warehouse}")
    if result.get("source_report"):
        from pipelines.sources.report import summary_lines

        for line in summary_lines(result["source_report"]):
            typer.echo(f"  {line}")
    for table, n in result["raw"].items():
        typer.echo(f"  raw.{table:<10} {n:>10,} rows")
    if result.get("scored") is not None:
        typer.echo(f"  features.presentation_flags {result['scored']:>10,} rows ({engine})")
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
