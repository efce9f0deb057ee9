"""The `redflags` console command.

Heavy libraries (pandas, DuckDB, Prefect, GX) are imported inside the commands,
so `--help` and the light commands start fast. Only `run` and `serve` start Prefect.
Every command reads its settings and its site's files the same way (`command_settings`).
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from pipelines import resources
from pipelines.config import Settings, load_settings
from pipelines.errors import UserError
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
SiteDir = Annotated[
    Path | None,
    typer.Option(
        "--site",
        help="Site folder (made by `redflags init`): its redflags.toml and its own "
        "schemas/ files replace the packaged ones. Also REDFLAGS_SITE.",
        show_default="the working directory when it holds a redflags.toml",
    ),
]
LockTimeout = Annotated[
    float | None,
    typer.Option(
        "--lock-timeout", help="Seconds to wait while the warehouse is busy.", show_default="300"
    ),
]


def command_settings(
    site: Path | None = None, config: Path | None = None, **options: Any
) -> Settings:
    """The settings of a command (file < REDFLAGS_* < `options`), its site's files chosen."""
    settings = load_settings(config, options, site=site)
    resources.use_site(settings.site)
    return settings


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
DocsDir = Annotated[
    Path | None,
    typer.Option(
        "--docs",
        help="Directory for the Great Expectations Data Docs (HTML) "
        "[default: docs/ beside the warehouse].",
    ),
]
DEFAULT_DOCS = Path("data") / "docs"


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"redflags {resources.version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Score back-pain presentations for red flags and build referral cohorts.

    Start with `redflags run` (the whole pipeline on data/sample/), then
    `redflags query` to look at the results. `redflags init DIR` makes a site folder
    for your own settings and rule files.
    """


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The site folder to make.")],
) -> None:
    """Make a site folder: a commented redflags.toml and empty schemas/ overlay folders.

    A file you place in DIR/schemas/ (or DIR/schemas/value_sets/) replaces the packaged
    file of the same name for every command run in DIR (or with --site DIR); copy the
    packaged file first (`redflags init` prints where the package keeps them).
    """
    from pipelines.config import site_config_text

    config = directory / resources.CONFIG_FILE
    if config.exists():
        raise UserError(f"{config}: exists already; choose a new folder", exit_code=2)
    (directory / "schemas" / "value_sets").mkdir(parents=True, exist_ok=True)
    config.write_text(site_config_text(), encoding="utf-8")
    typer.echo(f"site folder {directory}:")
    typer.echo(f"  {config}  (every setting, commented out at its default)")
    typer.echo(f"  {directory / 'schemas'}/  (your own contracts, rules, cohort definition)")
    typer.echo(f"  {directory / 'schemas' / 'value_sets'}/  (your own code lists)")
    typer.echo(f"packaged files to copy from: {resources.packaged_root() / 'schemas'}")


def echo_err(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def run(
    input_dir: InputDir = None,
    warehouse: WarehousePath = None,
    config: ConfigPath = None,
    engine: EngineOption = None,
    lock_timeout: LockTimeout = None,
    source: SourceKind = None,
    docs: DocsDir = None,
    site: SiteDir = None,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Remove the rows of files that are gone from INPUT."),
    ] = False,
    export: Annotated[
        bool,
        typer.Option("--export", help="Also write researcher extracts to the export_dir setting."),
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Build a new warehouse file from INPUT alone and swap it in by rename once "
            "published; the old file is kept as WAREHOUSE.damaged. For a damaged warehouse.",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Prepare files (read, scrub, validate) on a local Dask cluster of N worker "
            "processes; 0 runs everything in this process.",
        ),
    ] = None,
    dask_address: Annotated[
        str | None,
        typer.Option(
            "--dask-address",
            help="Prepare files on the running Dask cluster at this scheduler address "
            "(tcp://HOST:PORT); its workers must see INPUT and the warehouse's directory.",
        ),
    ] = None,
) -> None:
    """Run the whole pipeline (a Prefect flow) on INPUT into the WAREHOUSE.

    Ingest and validate every input file, score every presentation, build the cohorts
    and marts, and write the HTML report. Settings come from redflags.toml, then
    REDFLAGS_* variables, then these options (see docs/configuration.md). A busy
    warehouse is waited for up to --lock-timeout seconds; giving up exits with code 75.
    """
    from pipelines.flows.prefect_env import configure_prefect, start_prefect_api
    from pipelines.ingest.files import discover

    settings = command_settings(
        site,
        config,
        input_dir=input_dir,
        warehouse=warehouse,
        engine=engine,
        lock_timeout=lock_timeout,
        source=None if source is None else source.value,
        workers=workers,
        dask_address=dask_address,
    )
    # Bad arguments fail here, in one line, before Prefect starts.
    if settings.source == CANONICAL:
        discover(settings.input_dir)
    else:
        adapter(settings.source).check_input(settings.input_dir)
    docs = docs or settings.warehouse.parent / "docs"
    configure_prefect()
    server = start_prefect_api()  # boots on the other core while the stages import
    from pipelines.flows.deployments import flow_parameters
    from pipelines.flows.prefect_env import drop_user_error_tracebacks
    from pipelines.flows.run import run_pipeline
    from pipelines.flows.summary import tier_sort_key
    from pipelines.ingest.stage import format_summary

    drop_user_error_tracebacks()
    parameters = flow_parameters(settings) | {
        "docs_dir": str(docs.resolve()),
        "prune": prune,
        "rebuild": rebuild,
    }
    if not export:
        parameters["export_dir"] = None
    result = run_pipeline(
        parameters, workers=settings.workers, dask_address=settings.dask_address, server=server
    )
    typer.echo(f"run {result['run_id']}: {settings.input_dir} -> {settings.warehouse}")
    if rebuild:
        kept = result["rebuilt"]["damaged_kept_as"]
        typer.echo(f"  rebuilt from the input alone{f'; the old file is {kept}' if kept else ''}")
    if result.get("source_report"):
        from pipelines.sources.report import summary_lines

        for line in summary_lines(result["source_report"]):
            typer.echo(f"  {line}")
    typer.echo(format_summary(result["ingest"]))
    typer.echo(f"validation report (Data Docs): {docs / 'index.html'}")
    typer.echo(f"scored {result['scored']:,} presentations ({settings.engine})")
    tiers = result.get("tiers") or {}
    typer.echo(
        "  tiers: "
        + ", ".join(
            f"{t} {n:,}" for t, n in sorted(tiers.items(), key=lambda kv: tier_sort_key(kv[0]))
        )
    )
    typer.echo(
        f"index presentations: {result.get('index_presentations', 0):,}; "
        f"care gaps: {result.get('care_gaps', 0):,}"
    )
    if result.get("export"):
        typer.echo(f"extracts: {settings.export_dir} ({len(result['export'])} files)")
    typer.echo(f"report: {result['report']}")
    typer.echo(f'query the marts: redflags query "SELECT ..." -w {settings.warehouse}')


@app.command()
def report(
    warehouse: WarehousePath = None,
    site: SiteDir = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="HTML file to write (default: report.html beside the warehouse)."
        ),
    ] = None,
) -> None:
    """Write the HTML report of the WAREHOUSE's release: one self-contained file.

    It shows the counts of the release the last run made (small cells suppressed, the
    same as the export's; the minimum cell is the min_cell setting of that run)."""
    from pipelines.report import write_report

    settings = command_settings(site, warehouse=warehouse)
    path = write_report(settings.warehouse, out)
    typer.echo(f"report: {path}")
    note_release_min_cell(settings)


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


QUERY_FORMATS = ("table", "csv", "json", "parquet")


def _one_line(exc: Exception) -> str:
    """DuckDB's message without its multi-line context (LINE 1: ... ^)."""
    return " ".join(str(exc).split("\n")[0].split())


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run against the warehouse (read-only).")],
    warehouse: WarehousePath = None,
    site: SiteDir = None,
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json or parquet.")
    ] = "table",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the result here (needed for parquet).")
    ] = None,
) -> None:
    """Run read-only SQL against the WAREHOUSE: the marts are in schema `marts`."""
    import duckdb

    from pipelines.published import connect_for_analysts

    if output_format not in QUERY_FORMATS:
        raise UserError(
            f"--format {output_format}: choose one of {', '.join(QUERY_FORMATS)}", exit_code=2
        )
    if output_format == "parquet" and out is None:
        raise UserError("--format parquet writes a file: add --out FILE", exit_code=2)
    settings = command_settings(site, warehouse=warehouse)
    con = connect_for_analysts(settings.warehouse)
    try:
        relation = con.sql(sql)
        if relation is not None and output_format != "parquet":
            relation = _temporal_as_text(relation)
        result = relation.to_arrow_table() if relation is not None else None
    except duckdb.Error as exc:
        message = _one_line(exc)
        if "read-only mode" in message or "file system operations are disabled" in message:
            raise UserError(
                "redflags query is read-only: it cannot change the warehouse or touch other "
                f"files ({message}). The marts are rebuilt by `redflags run`; "
                "use --out to save a result."
            ) from exc
        raise UserError(f"SQL error: {message}") from exc
    finally:
        con.close()
    if result is None:
        typer.echo("ok (the statement returns no rows)", err=True)
        return
    _write_result(result, output_format, out)


# DuckDB type names that hold a date, a time or an interval, alone or inside a LIST/STRUCT.
TEMPORAL_TYPES = ("DATE", "TIME", "INTERVAL")


def _temporal_as_text(relation: Any) -> Any:
    """Dates, times and intervals as DuckDB writes them, cast inside DuckDB.

    Python's datetime holds years 1 to 9999 only; a warehouse date of year 0, 2025 BC
    or 10000 would stop the printing with an OverflowError. As text they print as
    DuckDB shows them (`2025-01-01 (BC)`); Parquet keeps the types (no Python on the way).
    """
    from pipelines.sqltext import identifier

    temporal = [any(word in str(type_) for word in TEMPORAL_TYPES) for type_ in relation.types]
    if not any(temporal):
        return relation
    # By position (#n): a result may name two columns alike.
    columns = [
        f"{f'CAST(#{n} AS VARCHAR)' if cast else f'#{n}'} AS {identifier(name)}"
        for n, (name, cast) in enumerate(zip(relation.columns, temporal, strict=True), start=1)
    ]
    return relation.project(", ".join(columns))


def _write_result(result: object, output_format: str, out: Path | None) -> None:
    """Print or save an Arrow table; Arrow-backed pandas keeps integers with NULLs integers."""
    import pandas as pd
    import pyarrow.parquet as pq

    if output_format == "parquet":
        pq.write_table(result, out, compression="zstd")
        return
    frame = result.to_pandas(types_mapper=pd.ArrowDtype)
    if output_format == "csv":
        from pipelines.outputs import csv_safe

        text = csv_safe(frame).to_csv(index=False)
    elif output_format == "json":
        text = frame.to_json(orient="records", date_format="iso", indent=1) + "\n"
    else:
        text = (frame.to_string(index=False) if len(frame.columns) else "(no columns)") + "\n"
    if out is not None:
        out.write_text(text, encoding="utf-8")
    else:
        typer.echo(text, nl=False)
        if output_format == "table":
            typer.echo(f"({len(frame):,} rows)", err=True)


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the extracts.")],
    warehouse: WarehousePath = None,
    site: SiteDir = None,
    tables: Annotated[
        list[str] | None,
        typer.Option("--tables", "-t", help="Release tables to export (repeat or comma-separate)."),
    ] = None,
    record_level: Annotated[
        bool,
        typer.Option(
            "--record-level",
            help="Also write index_presentations, one row per index presentation: a limited "
            "data set, for a data use agreement.",
        ),
    ] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace an earlier export in --out (nothing else)."),
    ] = False,
) -> None:
    """Write researcher extracts (Parquet, zstd) of the release and a manifest.

    By default the release's aggregate tables, small cells suppressed and audited (the
    minimum cell is the min_cell setting of the run that made the release)."""
    from pipelines.cohorts.export import export as write_export

    settings = command_settings(site, warehouse=warehouse)
    names = tuple(n.strip() for t in tables or () for n in t.split(",") if n.strip()) or None
    manifest = write_export(
        settings.warehouse, out, tables=names, record_level=record_level, replace=replace
    )
    typer.echo(
        f"export of run {manifest['run_id']} -> {out} (k = {manifest['suppression']['min_cell']})"
    )
    for item in manifest["files"]:
        extra = (
            f", {item['suppressed_rows']:,} rows suppressed" if "suppressed_rows" in item else ""
        )
        typer.echo(f"  {item['path']:<50} {item['rows']:>10,} rows{extra}")
    note_release_min_cell(settings, manifest["suppression"]["min_cell"])


def note_release_min_cell(settings: Settings, released: int | None = None) -> None:
    """Say so when the min_cell in force is not the one the release was made with: the
    release is never remade by export or report (two releases of the same marts with
    different minimum cells could be differenced), only by `redflags run`."""
    if released is None:
        from pipelines.disclosure.release import read_release
        from pipelines.published import connect_for_analysts

        con = connect_for_analysts(settings.warehouse)
        try:
            released = read_release(con).min_cell
        except UserError:
            return
        finally:
            con.close()
    if released != settings.min_cell:
        typer.echo(
            f"note: min_cell is {settings.min_cell} in your settings, but the release was made "
            f"with {released}; `redflags run` makes a new release with {settings.min_cell}",
            err=True,
        )


@app.command()
def validate(
    input_dir: Annotated[
        Path, typer.Argument(metavar="DIR", help="Directory of canonical input files.")
    ],
    docs: DocsDir = None,
    site: SiteDir = None,
) -> None:
    """Validate the files of DIR without loading them; print what each file would bring.

    Exit code 0 when every row is valid, 1 when rows would be quarantined or files
    rejected, 2 for a usage error.
    """
    from pipelines.ingest.stage import discover, format_summary, validate_directory

    settings = command_settings(site)
    discover(input_dir)  # a missing directory is a usage error (exit 2)
    docs = docs or DEFAULT_DOCS
    summary = validate_directory(
        input_dir, docs_dir=docs, date_min=settings.date_min, date_max=settings.date_max
    )
    typer.echo(format_summary(summary, checked_only=True))
    typer.echo(f"validation report (Data Docs): {docs / 'index.html'}")
    if not summary.clean:
        raise typer.Exit(1)


@app.command()
def score(
    input_file: Annotated[Path, typer.Argument(help="Canonical intake file (.csv or .parquet).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output file; .csv or .parquet picks the format.")
    ],
    engine: EngineOption = None,
    site: SiteDir = None,
) -> None:
    """Score every presentation of an intake file for red flags (no warehouse needed).

    Writes the columns of features.presentation_flags: effective flags, history
    features, tier, score, completeness and rules_version.
    """
    from pipelines.scoring.jobs import score_file

    settings = command_settings(site, engine=engine)
    n = score_file(input_file, out, settings.engine, progress=echo_err)
    typer.echo(f"scored {n:,} presentations: {input_file} -> {out}")


@app.command()
def serve(config: ConfigPath = None, site: SiteDir = None) -> None:
    """Serve the scheduled deployment on a Prefect server until stopped (Ctrl-C).

    Runs the flow nightly (schedule.cron in schedule.timezone of redflags.toml) and
    whenever it is triggered from the Prefect UI or API. Needs PREFECT_API_URL.
    """
    from pipelines.flows.prefect_env import configure_prefect

    settings = command_settings(site, config)
    configure_prefect()
    from pipelines.flows.deployments import DEPLOYMENT_NAME, require_server, serve_deployments

    require_server()
    typer.echo(
        f"serving redflags-run/{DEPLOYMENT_NAME}: cron '{settings.schedule_cron}' "
        f"({settings.schedule_timezone}), {settings.input_dir} -> {settings.warehouse}"
    )
    if settings.workers or settings.dask_address:
        # The deployment imports the flow by module path with its default task runner.
        echo_err(
            "redflags serve: note: workers and dask_address apply to `redflags run` only; "
            "scheduled runs prepare their files in the serving process"
        )
    serve_deployments(settings)


def main() -> None:
    """The `redflags` command: user errors become one line on stderr and an exit code."""
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
