"""The `redflags` console command.

Heavy libraries (pandas, DuckDB, Prefect, GX) are imported inside the commands,
so `--help` and the light commands start fast. Only `run` and `serve` start Prefect.
Every command reads its settings and its site's files the same way (`command_settings`):
an option that overrides a setting is declared with `setting_option`, whose help shows
the setting's key and built-in default, so the help, the settings and the code agree.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from pipelines import resources
from pipelines.config import (
    FUTURE_DATES,
    KEYS_BY_FIELD,
    Settings,
    default_text,
    load_settings,
)
from pipelines.errors import UserError
from pipelines.scoring.engines import ENGINES
from pipelines.sources.adapters import CANONICAL, SOURCE_KINDS, adapter

app = typer.Typer(
    name="redflags",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Click's own help: every default shown as written, paragraphs wrapped to the screen.
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)


def choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """The values as an Enum, which typer lists in the help and checks (a click Choice)."""
    return Enum(name, {value: value for value in values}, type=str)


# The option of each setting, as the commands spell it: one spelling per setting, so a
# bad value's message names the option the user typed.
SETTING_OPTIONS: dict[str, str] = {}


def setting_option(field: str, *names: str, metavar: str | None = None, help: str) -> Any:
    """An option that overrides the setting `field` (None when not given): its help ends
    with the setting's key and built-in default, both taken from pipelines/config.py."""
    key = KEYS_BY_FIELD[field]
    long = next(name for name in names if name.startswith("--"))
    if SETTING_OPTIONS.setdefault(field, long) != long:
        raise ValueError(f"setting {field}: two options, {SETTING_OPTIONS[field]} and {long}")
    return typer.Option(
        *names,
        metavar=metavar,
        help=f"{help}  [setting: {key.toml}; default: {default_text(field)}]",
        show_default=False,
    )


InputDir = Annotated[
    Path | None,
    setting_option("input_dir", "--input", "-i", metavar="DIR", help="Directory of input files."),
]
WarehousePath = Annotated[
    Path | None,
    setting_option("warehouse", "--warehouse", "-w", metavar="PATH", help="The warehouse file."),
]
ConfigPath = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="FILE",
        help="Settings file.  [default: redflags.toml of the site, if there is one]",
        show_default=False,
    ),
]
EngineChoice = choices("EngineChoice", ENGINES)
EngineOption = Annotated[
    EngineChoice | None,
    setting_option("engine", "--engine", help="Scoring engine."),
]
SiteDir = Annotated[
    Path | None,
    typer.Option(
        "--site",
        metavar="DIR",
        help="Site folder (made by `redflags init`): its redflags.toml and its own "
        "schemas/ files replace the packaged ones.  [default: REDFLAGS_SITE, else the "
        "working directory when it holds a redflags.toml]",
        show_default=False,
    ),
]
# The file `score` and `mentions` write.
OutputFile = Annotated[
    Path,
    typer.Option(
        "--out", "-o", metavar="FILE", help="Output file; .csv or .parquet picks the format."
    ),
]
LockTimeout = Annotated[
    float | None,
    setting_option(
        "lock_timeout",
        "--lock-timeout",
        metavar="SECONDS",
        help="Seconds to wait while the warehouse is busy.",
    ),
]


def command_settings(
    site: Path | None = None, config: Path | None = None, **options: Any
) -> Settings:
    """The settings of a command (file < REDFLAGS_* < `options`), its site's files chosen.

    `options` are the command's options by setting (None: not given).
    """
    options = {k: v.value if isinstance(v, Enum) else v for k, v in options.items()}
    settings = load_settings(config, options, site=site, option_names=SETTING_OPTIONS)
    resources.use_site(settings.site)
    return settings


# The choices of --source, from the adapters registry.
SourceChoice = choices("SourceChoice", SOURCE_KINDS)
SourceKind = Annotated[
    SourceChoice | None,
    setting_option(
        "source",
        "--source",
        "-s",
        help="Kind of INPUT: canonical files, an OMOP CDM folder, or FHIR R4 Bundles/NDJSON.",
    ),
]
FutureDatesChoice = choices("FutureDatesChoice", FUTURE_DATES)
FutureDates = Annotated[
    FutureDatesChoice | None,
    setting_option(
        "future_dates",
        "--future-dates",
        help="Dates after the load date: quarantine them, or accept them (a source whose "
        "dates are shifted into the future on purpose, such as MIMIC).",
    ),
]
DocsDir = Annotated[
    Path | None,
    setting_option(
        "docs_dir",
        "--docs",
        metavar="DIR",
        help="Directory for the validation pages (Data Docs, HTML); the newest docs_keep "
        "runs are kept.",
    ),
]


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
    future_dates: FutureDates = None,
    min_cell: Annotated[
        int | None,
        setting_option(
            "min_cell",
            "--min-cell",
            metavar="K",
            help="The release's minimum cell: the report and the extracts show no count "
            "from 1 to K-1.",
        ),
    ] = None,
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
        setting_option(
            "workers",
            "--workers",
            metavar="N",
            help="Prepare files (read, scrub, validate) on a local Dask cluster of N worker "
            "processes; 0 runs everything in this process.",
        ),
    ] = None,
    dask_address: Annotated[
        str | None,
        setting_option(
            "dask_address",
            "--dask-address",
            metavar="URL",
            help="Prepare files on the running Dask cluster at this scheduler address "
            "(tcp://HOST:PORT); its workers must see INPUT and the warehouse's directory.",
        ),
    ] = None,
) -> None:
    """Run the whole pipeline (a Prefect flow) on INPUT into the WAREHOUSE.

    Ingest and validate every input file, score every presentation, build the cohorts
    and marts, publish their release (small counts suppressed) and write the HTML
    report. Settings come from redflags.toml, then REDFLAGS_* variables, then these
    options (see docs/configuration.md). A busy warehouse is waited for up to
    --lock-timeout seconds; giving up exits with code 75. A run with nothing usable to
    publish (no input file, no intake row, a file quarantined above max_quarantine_share)
    stops after its ingest with code 65, the last good marts left as they were.
    """
    from pipelines.flows.prefect_env import configure_prefect, start_prefect_api
    from pipelines.ingest.files import discover
    from pipelines.ingest.guard import require_input_files

    settings = command_settings(
        site,
        config,
        input_dir=input_dir,
        warehouse=warehouse,
        engine=engine,
        lock_timeout=lock_timeout,
        source=source,
        docs_dir=docs,
        min_cell=min_cell,
        workers=workers,
        dask_address=dask_address,
        future_dates=future_dates,
    )
    # Bad arguments fail here, in one line, before Prefect starts.
    if settings.source == CANONICAL:
        require_input_files(discover(settings.input_dir), settings.input_dir)
    else:
        adapter(settings.source).check_input(settings.input_dir)
    configure_prefect()
    server = start_prefect_api()  # boots on the other core while the stages import
    from pipelines.flows.deployments import flow_parameters
    from pipelines.flows.prefect_env import drop_user_error_tracebacks
    from pipelines.flows.run import run_pipeline
    from pipelines.flows.summary import tier_sort_key
    from pipelines.ingest.stage import format_summary

    drop_user_error_tracebacks()
    parameters = flow_parameters(settings) | {"prune": prune, "rebuild": rebuild}
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
    typer.echo(f"validation report (Data Docs): {result['docs']['index']}")
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
    typer.echo(f"report: {result['report']} (minimum cell {settings.min_cell})")
    typer.echo(f'query the marts: redflags query "SELECT ..." -w {settings.warehouse}')


@app.command()
def report(
    warehouse: WarehousePath = None,
    config: ConfigPath = None,
    site: SiteDir = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="HTML file to write.  [default: report.html beside the warehouse]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write the HTML report of the WAREHOUSE's release: one self-contained file.

    It shows the counts of the release the last run made, small cells suppressed as
    the export's are; its minimum cell is the min_cell setting of that run, and a note
    says so when your settings now give another one.
    """
    from pipelines.report import write_report
    from pipelines.validation.docs import INDEX_FILE

    settings = command_settings(site, config, warehouse=warehouse)
    path = write_report(settings.warehouse, out, docs_index=settings.docs_dir / INDEX_FILE)
    typer.echo(f"report: {path}")
    note_release_min_cell(settings)


GenerateFormat = choices("GenerateFormat", ("csv", "parquet", "canonical", "omop", "fhir"))
# Source models the generator converts its canonical files into (pipelines/synth/omop.py,
# fhir.py); `canonical` is the canonical CSV files.
GENERATE_MODELS = {
    "omop": "pipelines.synth.omop:write_omop",
    "fhir": "pipelines.synth.fhir:write_fhir",
}


@app.command()
def generate(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Directory to write intake, referrals and diagnoses into (created if missing; "
            "files of the same name are replaced).",
        ),
    ],
    patients: Annotated[
        int,
        typer.Option(
            "--patients", "-n", metavar="N", help="Number of patients to generate (1 or more)."
        ),
    ] = 2000,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            "-s",
            metavar="S",
            help="Random seed (0 or more); the same seed gives identical files.",
        ),
    ] = 42,
    fmt: Annotated[
        GenerateFormat,
        typer.Option(
            "--format",
            "-f",
            help="Canonical files as csv (also: canonical) or parquet; or the same population "
            "as OMOP CDM v5.4 tables (omop, CSV with a small concept table) or FHIR R4 "
            "Bulk Data NDJSON (fhir).",
        ),
    ] = GenerateFormat.csv,
    start: Annotated[
        str,
        typer.Option("--start", metavar="DATE", help="First date of presentations (YYYY-MM-DD)."),
    ] = "2023-01-01",
    end: Annotated[
        str,
        typer.Option(
            "--end", metavar="DATE", help="Last date of presentations and referrals (YYYY-MM-DD)."
        ),
    ] = "2025-12-31",
) -> None:
    """Write a synthetic population as canonical intake, referrals and diagnoses files.

    Deterministic: the same options give byte-identical files. Reads no settings.
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

    model = fmt.value if fmt.value in GENERATE_MODELS else None
    file_format = "parquet" if model else {"canonical": "csv"}.get(fmt.value, fmt.value)
    check_arguments(out, patients, seed, start_date, end_date, file_format)
    canonical_dir = out / ".canonical" if model else out
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
            canonical_dir,
            patients=patients,
            seed=seed,
            start=start_date,
            end=end_date,
            fmt=file_format,
            progress=lambda n: bar.advance(task, n),
        )
    if model:
        import importlib
        import shutil

        module, function = GENERATE_MODELS[model].split(":")
        rows = getattr(importlib.import_module(module), function)(canonical_dir, out)
        shutil.rmtree(canonical_dir)
    summary = ", ".join(f"{n:,} {table}" for table, n in rows.items())
    typer.echo(f"generated {patients:,} patients into {out}: {summary} rows ({fmt.value})")


def _one_line(exc: Exception) -> str:
    """DuckDB's message without its multi-line context (LINE 1: ... ^)."""
    return " ".join(str(exc).split("\n")[0].split())


QueryFormat = choices("QueryFormat", ("table", "csv", "tsv", "json", "parquet"))


@app.command()
def query(
    sql: Annotated[
        str, typer.Argument(metavar="SQL", help="SQL to run against the warehouse (read-only).")
    ],
    warehouse: WarehousePath = None,
    config: ConfigPath = None,
    site: SiteDir = None,
    output_format: Annotated[
        QueryFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="Output format.  [default: the one --out's extension names (.txt .csv .tsv "
            ".json .parquet), else table]",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="Write the result to FILE (needed for parquet).  [default: print it]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run read-only SQL against the WAREHOUSE: the marts are in schema `marts`.

    DuckDB prints and writes the result itself: NULL is NULL in the table, empty in CSV
    and null in JSON; dates, lists and decimals keep their types. The table shows at
    most 9,999 rows (a note on stderr says how many more there are); on a terminal it
    is fitted to the screen.
    """
    import duckdb

    from pipelines import query as output
    from pipelines.published import connect_for_analysts

    fmt = output.output_format(None if output_format is None else output_format.value, out)
    output.check_output(fmt, out)
    settings = command_settings(site, config, warehouse=warehouse)
    con = connect_for_analysts(settings.warehouse)
    try:
        relation = con.sql(sql)
        rows = None if relation is None else output.write_result(con, relation, fmt, out)
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
    if relation is None:
        echo_err("ok (the statement returns no rows)")
    elif rows is not None and rows > output.TABLE_ROWS:
        echo_err(
            f"({rows:,} rows; the table shows the first {output.TABLE_ROWS:,}: "
            "--format csv or --out FILE writes them all)"
        )
    elif rows is not None:
        echo_err(f"({rows:,} {'row' if rows == 1 else 'rows'})")


@app.command()
def export(
    export_dir: Annotated[
        Path | None,
        setting_option(
            "export_dir",
            "--out",
            "-o",
            metavar="DIR",
            help="Directory for the extracts: new or empty (or an earlier export, with --replace).",
        ),
    ] = None,
    warehouse: WarehousePath = None,
    config: ConfigPath = None,
    site: SiteDir = None,
    tables: Annotated[
        list[str] | None,
        typer.Option(
            "--tables",
            "-t",
            metavar="NAMES",
            help="Release tables to export (repeat or comma-separate).  [default: every "
            "aggregate table]",
            show_default=False,
        ),
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

    By default the release's aggregate tables, small cells suppressed and audited. The
    minimum cell is the min_cell setting of the run that made the release; a note says
    so when your settings now give another one.
    """
    from pipelines.cohorts.export import export as write_export

    settings = command_settings(site, config, warehouse=warehouse, export_dir=export_dir)
    out = settings.export_dir
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
        Path | None,
        typer.Argument(
            metavar="DIR",
            help="Directory of canonical input files.  [default: the input_dir setting]",
            show_default=False,
        ),
    ] = None,
    docs: DocsDir = None,
    future_dates: FutureDates = None,
    config: ConfigPath = None,
    site: SiteDir = None,
) -> None:
    """Validate the files of DIR without loading them; print what each file would bring.

    Exit code 0 when every row is valid, 1 when rows would be quarantined or files
    rejected, 2 for a usage error, 65 when DIR holds no input file.
    """
    from pipelines.ingest.guard import require_input_files
    from pipelines.ingest.stage import discover, format_summary, validate_directory
    from pipelines.validation.docs import INDEX_FILE

    settings = command_settings(
        site, config, input_dir=input_dir, docs_dir=docs, future_dates=future_dates
    )
    if input_dir is None and settings.source != CANONICAL:
        raise UserError(
            f"the input_dir setting ({settings.input_dir}) is a {settings.source} source; "
            "validate checks canonical files: give DIR",
            exit_code=2,
        )
    # A missing directory is a usage error (exit 2); one without an input file, 65.
    require_input_files(discover(settings.input_dir), settings.input_dir)
    summary = validate_directory(
        settings.input_dir,
        docs_dir=settings.docs_dir,
        docs_keep=settings.docs_keep,
        date_min=settings.date_min,
        date_max=settings.date_max,
        future_dates=settings.future_dates,
    )
    typer.echo(format_summary(summary, checked_only=True))
    typer.echo(f"validation report (Data Docs): {settings.docs_dir / INDEX_FILE}")
    if not summary.clean:
        raise typer.Exit(1)


@app.command()
def score(
    input_file: Annotated[
        Path,
        typer.Argument(metavar="INPUT", help="Canonical intake file (.csv or .parquet)."),
    ],
    out: OutputFile,
    engine: EngineOption = None,
    config: ConfigPath = None,
    site: SiteDir = None,
    diagnoses: Annotated[
        Path | None,
        typer.Option(
            "--diagnoses",
            metavar="FILE",
            help="Canonical diagnoses file (.csv or .parquet; columns of schemas/diagnoses.yml): "
            "a cancer diagnosed on or before a presentation's date makes known_cancer TRUE.  "
            "[default: none; history from the intake only]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score every presentation of an intake file for red flags (no warehouse needed).

    Writes the columns of features.presentation_flags: effective flags, history
    features, tier, score, completeness and rules_version.
    """
    from pipelines.scoring.jobs import score_file

    settings = command_settings(site, config, engine=engine)
    n = score_file(
        input_file,
        out,
        settings.engine,
        memory_limit=settings.memory_limit,
        progress=echo_err,
        diagnoses=diagnoses,
    )
    typer.echo(f"scored {n:,} presentations: {input_file} -> {out}")


@app.command()
def mentions(
    input_file: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT", help="CSV or Parquet with columns text, phrase and optionally gold."
        ),
    ],
    out: OutputFile,
    engine: EngineOption = None,
    config: ConfigPath = None,
    site: SiteDir = None,
) -> None:
    """Read each row's phrase in its text with the text engine: affirmed, negated,
    hypothetical, other_person or absent.

    Writes INPUT's columns and `status`, from the cue lists of schemas/context_lexicon.csv
    (a site's own file replaces it). With a gold column, prints how often the engine agrees
    with it, and negation precision, recall and F1. For checking the engine on a site's own
    annotated notes (docs/text_engine.md).
    """
    from pipelines.scoring.mentions import format_result, run_mentions

    settings = command_settings(site, config, engine=engine)
    result = run_mentions(input_file, out, settings.engine, memory_limit=settings.memory_limit)
    for line in format_result(result):
        typer.echo(line)


@app.command()
def serve(config: ConfigPath = None, site: SiteDir = None) -> None:
    """Serve the scheduled deployment on a Prefect server until stopped (Ctrl-C).

    Runs the flow at schedule.cron in schedule.timezone of the settings (nightly at
    02:00 UTC by default), and whenever it is triggered from the Prefect UI or API, with
    the settings read when it started. Needs PREFECT_API_URL.
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


def usage_message(exc: typer.TyperException) -> str:
    """Typer's complaint about the command line as one line, with where to find help."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    context = getattr(exc, "ctx", None)  # a usage error's command, when it knows it
    if context is None:
        return message
    where = "" if context.parent is None else f"{context.info_name}: "
    return f"{where}{message}; see `{context.command_path} --help`"


def main(args: list[str] | None = None) -> None:
    """The `redflags` command: every error is one line on stderr and an exit code.

    The command runs in click's non-standalone mode, so that usage errors (an unknown
    option, a bad choice) come here and are printed like every other error, not in a box.
    """
    args = sys.argv[1:] if args is None else args
    command = typer.main.get_command(app)
    if not args:  # `redflags` alone: the help, as for any incomplete command line
        echo_err(command.get_help(typer.Context(command, info_name="redflags")))
        sys.exit(2)
    try:
        code = command.main(args, prog_name="redflags", standalone_mode=False)
    except typer.TyperException as exc:  # usage errors (exit code 2) and other click errors
        echo_err(f"redflags: error: {usage_message(exc)}")
        sys.exit(exc.exit_code)
    except UserError as exc:
        echo_err(f"redflags: error: {exc}")
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        echo_err("redflags: interrupted")
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to write, and no one to tell.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    # Non-standalone, typer returns the code of a typer.Exit (validate's 1, --help's 0).
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
