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
DocsDir = Annotated[
    Path,
    typer.Option("--docs", help="Directory for the Great Expectations Data Docs (HTML)."),
]
DEFAULT_DOCS = Path("data") / "docs"


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
    docs: DocsDir = DEFAULT_DOCS,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Remove the rows of files that are gone from INPUT."),
    ] = False,
) -> None:
    """Run the whole pipeline (a Prefect flow) on INPUT into the WAREHOUSE."""
    from pipelines.flows.prefect_env import configure_prefect
    from pipelines.sources.canonical import discover

    discover(input_dir)  # bad arguments fail here, in one line, before Prefect starts
    configure_prefect()
    from pipelines.flows.run import redflags_run
    from pipelines.ingest import IngestSummary
    from pipelines.ingest_report import format_summary

    result = redflags_run(
        input_dir=str(input_dir), warehouse=str(warehouse), docs_dir=str(docs), prune=prune
    )
    typer.echo(f"run {result['run_id']}: {input_dir} -> {warehouse}")
    typer.echo(format_summary(IngestSummary.from_dict(result["ingest"])))
    typer.echo(f"validation report (Data Docs): {docs / 'index.html'}")
    for table, n in result["raw"].items():
        typer.echo(f"  raw.{table:<10} {n:>10,} rows")


@app.command()
def validate(
    input_dir: Annotated[
        Path, typer.Argument(metavar="DIR", help="Directory of canonical input files.")
    ],
    docs: DocsDir = DEFAULT_DOCS,
) -> None:
    """Validate the files of DIR without loading them; print what each file would bring.

    Exit code 0 when every row is valid, 1 when rows would be quarantined or files
    rejected, 2 for a usage error.
    """
    from pipelines.ingest import validate_directory
    from pipelines.ingest_report import format_summary
    from pipelines.sources.canonical import discover

    discover(input_dir)  # a missing directory is a usage error (exit 2)
    summary = validate_directory(input_dir, docs_dir=docs)
    typer.echo(format_summary(summary, checked_only=True))
    typer.echo(f"validation report (Data Docs): {docs / 'index.html'}")
    if not summary.clean:
        raise typer.Exit(1)


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
