"""Every command reads its settings one way: the site's redflags.toml, then REDFLAGS_*,
then its options, later ones winning.

One site folder is made and run once for the module (`redflags run` in a subprocess,
as a user runs it); the other commands run in this process through `main`, the console
entry point, with the stages they would start replaced by recorders where a whole run
would teach nothing more (run's flow, serve's server, validate's suites, score's job).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines import resources
from pipelines.cli import main
from pipelines.config import Settings
from pipelines.published import published_path
from pipelines.scoring.rules import load_rules
from tests.support.orchestration import INTAKE_A, subprocess_env, write_inputs


@pytest.fixture(autouse=True)
def no_stray_settings(monkeypatch: pytest.MonkeyPatch):
    """No REDFLAGS_* of the machine running the tests; the package's files again after."""
    for name in list(os.environ):
        if name.startswith("REDFLAGS_"):
            monkeypatch.delenv(name)
    yield
    resources.use_site(None)


def redflags(
    capsys: pytest.CaptureFixture[str], *args: str, expect: type[BaseException] = SystemExit
) -> tuple[Any, str, str]:
    """`redflags ARGS` in this process: how it ended (exit code or the exception), stdout,
    stderr."""
    with pytest.raises(expect) as ended:
        main(list(args))
    captured = capsys.readouterr()
    how = ended.value.code if isinstance(ended.value, SystemExit) else ended.value
    return how, captured.out, captured.err


@dataclass(frozen=True)
class SiteRun:
    site: Path
    warehouse: Path
    stdout: str


@pytest.fixture(scope="module")
def site_run(tmp_path_factory: pytest.TempPathFactory) -> SiteRun:
    """A site folder (`redflags init`) that sets min_cell = 20, its input, warehouse and
    export folder, and has its own copy of the rules; `redflags run --export` in it."""
    site = tmp_path_factory.mktemp("precedence") / "site"
    env = subprocess_env(PREFECT_API_URL=os.environ["PREFECT_API_URL"])

    def cli(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", *args],
            capture_output=True, text=True, cwd=site, env=env, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    site.mkdir()
    cli("init", ".")
    toml = site / "redflags.toml"
    text = toml.read_text(encoding="utf-8")
    for commented, setting in (
        ("# min_cell = 11\n", "min_cell = 20\n"),
        ('# input_dir = "data/sample"\n', 'input_dir = "in"\n'),
        ('# warehouse = "data/warehouse.duckdb"\n', 'warehouse = "w/warehouse.duckdb"\n'),
        ('# export_dir = "data/exports"\n', 'export_dir = "extracts"\n'),
    ):
        assert commented in text, commented
        text = text.replace(commented, setting)
    toml.write_text(text, encoding="utf-8")
    # The site's own rules: the packaged file and one comment, so another rules version.
    own_rules = site / "schemas" / "red_flags.yml"
    shutil.copy(resources.packaged_root() / "schemas" / "red_flags.yml", own_rules)
    with own_rules.open("a", encoding="utf-8") as fh:
        fh.write("# this site's copy\n")
    cli("generate", "--out", "in", "--patients", "1500")
    run = cli("run", "--export")
    return SiteRun(site, site / "w" / "warehouse.duckdb", run.stdout)


# ---------------------------------------------------------------- run: the acceptance


COUNTS = {  # the count columns of release tables (pipelines/disclosure/release.py)
    "cohort_summary": ("n_eligible", "n_events", "n_censored"),
    "index_tier_mix": ("n",),
    "care_gap_counts": ("n",),
}


@pytest.mark.slow
def test_a_sites_min_cell_is_the_releases_the_exports_and_the_reports(site_run: SiteRun):
    site = site_run.site
    # the file's input, warehouse and export folder, relative to the file
    assert f"{site / 'in'} -> {site_run.warehouse}" in site_run.stdout
    manifest = json.loads((site / "extracts" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["suppression"]["min_cell"] == 20
    assert manifest["audit"]["min_cell"] == 20
    assert manifest["audit"]["narrowest_suppressed_range"] >= 20
    report = (site / "w" / "report.html").read_text(encoding="utf-8")
    assert "20 (counts 1–19 suppressed, and more where they could be worked out)" in report
    assert f"report: {site / 'w' / 'report.html'} (minimum cell 20)" in site_run.stdout
    # ... and applied: the marts hold counts from 11 to 19, which the default k = 11
    # would show; no extract shows a count from 1 to 19.
    con = duckdb.connect(str(site_run.warehouse), read_only=True)
    try:
        cells = con.execute(
            "SELECT count(*) FROM marts.cohort_summary "
            "WHERE n_eligible BETWEEN 11 AND 19 OR n_events BETWEEN 11 AND 19"
        ).fetchone()[0]
        rules_version = con.execute("SELECT DISTINCT rules_version FROM ops.run_log").fetchall()
    finally:
        con.close()
    assert cells > 0
    for table, columns in COUNTS.items():
        frame = pq.read_table(site / "extracts" / f"{table}.parquet").to_pandas()
        for column in columns:
            shown = frame[column].dropna()
            assert not shown.between(1, 19).any(), (table, column)
    # the run used the site's rules, not the packaged ones
    site_version = load_rules(site / "schemas" / "red_flags.yml").version
    assert rules_version == [(site_version,)]
    assert (
        site_version != load_rules(resources.packaged_root() / "schemas" / "red_flags.yml").version
    )


class Recorded(Exception):
    """What a replaced stage was given; raised to end the command there."""

    def __init__(self, **given: Any) -> None:
        super().__init__("recorded")
        self.given = given


def record():
    def recorder(*args: Any, **kwargs: Any):
        raise Recorded(args=args, **kwargs)

    return recorder


@pytest.fixture
def plain_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site folder as the working directory, with a small canonical input in `in/`."""
    site = tmp_path / "site"
    write_inputs(site / "in", {"intake.csv": INTAKE_A})
    monkeypatch.chdir(site)
    return site


def test_run_file_then_environment_then_options(
    plain_site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import pipelines.flows.run

    monkeypatch.setattr(pipelines.flows.run, "run_pipeline", record())
    (plain_site / "redflags.toml").write_text(
        'input_dir = "in"\nwarehouse = "file.duckdb"\nengine = "pandas"\nmin_cell = 20\n'
        "lock_timeout = 5\n",
        encoding="utf-8",
    )

    def parameters(*args: str) -> dict[str, Any]:
        how, _, err = redflags(capsys, "run", *args, expect=Recorded)
        return how.given["args"][0]

    from_file = parameters()
    assert from_file["input_dir"] == str(plain_site / "in")
    assert from_file["warehouse"] == str(plain_site / "file.duckdb")
    assert from_file["docs_dir"] == str(plain_site / "docs")  # beside the warehouse
    assert (from_file["engine"], from_file["min_cell"], from_file["lock_timeout"]) == (
        "pandas",
        20,
        5.0,
    )
    assert from_file["site"] == str(plain_site)
    assert from_file["export_dir"] is None  # no --export

    monkeypatch.setenv("REDFLAGS_WAREHOUSE", str(plain_site / "env" / "env.duckdb"))
    monkeypatch.setenv("REDFLAGS_MIN_CELL", "15")
    monkeypatch.setenv("REDFLAGS_ENGINE", "duckdb")
    from_env = parameters()
    assert from_env["warehouse"] == str(plain_site / "env" / "env.duckdb")
    assert from_env["docs_dir"] == str(plain_site / "env" / "docs")
    assert (from_env["engine"], from_env["min_cell"], from_env["lock_timeout"]) == (
        "duckdb",
        15,
        5.0,
    )

    from_options = parameters(
        "-w", "opt.duckdb", "--min-cell", "12", "--engine", "pandas", "--lock-timeout", "0",
        "--docs", "pages", "--export",
    )  # fmt: skip
    assert from_options["warehouse"] == str(plain_site / "opt.duckdb")
    assert from_options["docs_dir"] == str(plain_site / "pages")
    assert (from_options["engine"], from_options["min_cell"], from_options["lock_timeout"]) == (
        "pandas",
        12,
        0.0,
    )
    assert from_options["export_dir"] == str(plain_site / "data" / "exports")


def test_a_bad_value_names_where_it_came_from(
    plain_site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    (plain_site / "redflags.toml").write_text("min_cell = 0\n", encoding="utf-8")
    assert redflags(capsys, "export") == (
        2,
        "",
        f"redflags: error: {plain_site / 'redflags.toml'}: key 'min_cell': 0 is below the "
        "minimum of 1\n",
    )
    (plain_site / "redflags.toml").write_text("", encoding="utf-8")
    monkeypatch.setenv("REDFLAGS_LOCK_TIMEOUT", "soon")
    assert redflags(capsys, "query", "SELECT 1")[2] == (
        "redflags: error: environment variable REDFLAGS_LOCK_TIMEOUT: 'soon' is not a number "
        "of seconds\n"
    )
    monkeypatch.delenv("REDFLAGS_LOCK_TIMEOUT")
    # an option's value: named as the command spells the option
    assert redflags(capsys, "run", "--min-cell", "0")[2] == (
        "redflags: error: option --min-cell: 0 is below the minimum of 1\n"
    )
    assert redflags(capsys, "run", "--input", " ")[2] == (
        "redflags: error: option --input: expected a non-empty path string\n"
    )


# ---------------------------------------------------------------- the readers


def three_warehouses(site: Path) -> None:
    """Warehouses that say which they are: one named by the file, the environment, the option.

    Readers open a warehouse's published copy, so that is what each holds."""
    for name in ("file", "env", "opt"):
        con = duckdb.connect(str(published_path(site / f"{name}.duckdb")))
        con.execute(f"CREATE TABLE which AS SELECT '{name}' AS source")
        con.close()


def test_query_file_then_environment_then_option(
    plain_site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    three_warehouses(plain_site)
    (plain_site / "redflags.toml").write_text('warehouse = "file.duckdb"\n', encoding="utf-8")
    sql = ("query", "SELECT source FROM which", "-f", "csv")
    assert redflags(capsys, *sql) == (0, "source\nfile\n", "")
    monkeypatch.setenv("REDFLAGS_WAREHOUSE", str(plain_site / "env.duckdb"))
    assert redflags(capsys, *sql) == (0, "source\nenv\n", "")
    assert redflags(capsys, *sql, "-w", "opt.duckdb") == (0, "source\nopt\n", "")
    # --config names another file, which replaces the site's
    (plain_site / "other.toml").write_text('warehouse = "opt.duckdb"\n', encoding="utf-8")
    monkeypatch.delenv("REDFLAGS_WAREHOUSE")
    assert redflags(capsys, *sql, "--config", "other.toml") == (0, "source\nopt\n", "")


def test_report_file_then_environment_then_option(
    plain_site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import pipelines.report

    written: list[Path] = []
    linked: list[Path] = []

    def write_report(warehouse: Path, out: Path | None, docs_index: Path) -> Path:
        written.append(warehouse)
        linked.append(docs_index)
        return Path("r.html")

    monkeypatch.setattr(pipelines.report, "write_report", write_report)
    (plain_site / "redflags.toml").write_text('warehouse = "file.duckdb"\n', encoding="utf-8")
    three_warehouses(plain_site)  # no release in them: no note on the min_cell
    assert redflags(capsys, "report") == (0, "report: r.html\n", "")
    monkeypatch.setenv("REDFLAGS_WAREHOUSE", str(plain_site / "env.duckdb"))
    redflags(capsys, "report")
    redflags(capsys, "report", "--warehouse", "opt.duckdb")
    assert written == [
        plain_site / "file.duckdb",
        plain_site / "env.duckdb",
        Path("opt.duckdb"),  # relative to the working directory
    ]
    # The report links the validation pages of the docs_dir setting, beside the warehouse.
    assert linked == [w.parent / "docs" / "index.html" for w in written]


@pytest.mark.slow
def test_report_and_export_read_the_sites_settings(
    site_run: SiteRun,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    """The issue that started this: report and export found no warehouse in a site, and
    export used k = 11 when the site set 20."""
    monkeypatch.chdir(site_run.site)
    out = tmp_path / "report.html"
    assert redflags(capsys, "report", "-o", str(out)) == (0, f"report: {out}\n", "")
    # export: the file's export_dir (an earlier export there: --replace), k of the release
    code, stdout, err = redflags(capsys, "export", "--replace")
    assert (code, err) == (0, "")
    assert stdout.startswith("export of run ")
    assert f" -> {site_run.site / 'extracts'} (k = 20)\n" in stdout.splitlines()[0] + "\n"
    # the environment's export_dir and min_cell: the release is not remade, a note says so
    monkeypatch.setenv("REDFLAGS_EXPORT_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("REDFLAGS_MIN_CELL", "15")
    code, stdout, err = redflags(capsys, "export")
    assert code == 0 and f" -> {tmp_path / 'env'} (k = 20)" in stdout
    assert err == (
        "note: min_cell is 15 in your settings, but the release was made with 20; "
        "`redflags run` makes a new release with 15\n"
    )
    assert (
        json.loads((tmp_path / "env" / "manifest.json").read_text())["suppression"]["min_cell"]
        == 20
    )
    # the option
    code, stdout, _ = redflags(capsys, "export", "--out", str(tmp_path / "opt"))
    assert code == 0 and (tmp_path / "opt" / "manifest.json").exists()
    assert redflags(capsys, "report", "-o", str(out))[2].startswith("note: min_cell is 15")


# ---------------------------------------------------------------- validate, score, serve


def test_validate_file_then_environment_then_option(
    plain_site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import pipelines.ingest.stage

    monkeypatch.setattr(pipelines.ingest.stage, "validate_directory", record())
    (plain_site / "redflags.toml").write_text(
        'input_dir = "in"\nwarehouse = "w/file.duckdb"\ndate_min = 2000-01-01\n',
        encoding="utf-8",
    )

    def validated(*args: str) -> dict[str, Any]:
        return redflags(capsys, "validate", *args, expect=Recorded)[0].given

    from_file = validated()  # DIR: the input_dir setting; docs: beside the warehouse
    assert from_file["args"] == (plain_site / "in",)
    assert from_file["docs_dir"] == plain_site / "w" / "docs"
    assert str(from_file["date_min"]) == "2000-01-01"
    monkeypatch.setenv("REDFLAGS_DOCS_DIR", str(plain_site / "env-docs"))
    monkeypatch.setenv("REDFLAGS_DATE_MIN", "2001-01-01")
    from_env = validated()
    assert (from_env["docs_dir"], str(from_env["date_min"])) == (
        plain_site / "env-docs",
        "2001-01-01",
    )
    write_inputs(plain_site / "other", {"intake.csv": INTAKE_A})
    from_options = validated("other", "--docs", "opt-docs")
    assert from_options["args"] == (Path("other"),)
    assert from_options["docs_dir"] == Path("opt-docs")
    # an input_dir of another source kind is not for validate
    monkeypatch.setenv("REDFLAGS_SOURCE", "omop")
    assert redflags(capsys, "validate")[0] == 2


def test_score_file_then_environment_then_option(
    plain_site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import pipelines.scoring.jobs

    monkeypatch.setattr(pipelines.scoring.jobs, "score_file", record())
    (plain_site / "redflags.toml").write_text(
        'engine = "pandas"\nmemory_limit = "1GB"\n', encoding="utf-8"
    )

    def scored(*args: str) -> tuple[str, str]:
        given = redflags(capsys, "score", "in/intake.csv", "-o", "o.csv", *args, expect=Recorded)
        return given[0].given["args"][2], given[0].given["memory_limit"]

    assert scored() == ("pandas", "1GB")
    monkeypatch.setenv("REDFLAGS_ENGINE", "duckdb")
    monkeypatch.setenv("REDFLAGS_MEMORY_LIMIT", "512MB")
    assert scored() == ("duckdb", "512MB")
    assert scored("--engine", "pandas") == ("pandas", "512MB")


def test_serve_file_then_environment_then_config(
    plain_site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import pipelines.flows.deployments

    served: list[Settings] = []
    monkeypatch.setattr(pipelines.flows.deployments, "serve_deployments", served.append)
    (plain_site / "redflags.toml").write_text(
        'warehouse = "file.duckdb"\n[schedule]\ncron = "30 1 * * *"\n', encoding="utf-8"
    )
    assert redflags(capsys, "serve")[0] == 0
    monkeypatch.setenv("REDFLAGS_SCHEDULE_TIMEZONE", "Europe/London")
    assert redflags(capsys, "serve")[0] == 0
    (plain_site / "other.toml").write_text('[schedule]\ncron = "0 4 * * *"\n', encoding="utf-8")
    assert redflags(capsys, "serve", "--config", "other.toml")[0] == 0
    schedules = [(s.schedule_cron, s.schedule_timezone) for s in served]
    assert schedules == [
        ("30 1 * * *", "UTC"),
        ("30 1 * * *", "Europe/London"),
        ("0 4 * * *", "Europe/London"),
    ]
    # a scheduled run gets the same parameters as `redflags run`: the site, docs_dir
    from pipelines.flows.deployments import flow_parameters

    parameters = flow_parameters(served[0])
    assert parameters["site"] == str(plain_site)
    assert parameters["docs_dir"] == str(plain_site / "docs")
    assert parameters["warehouse"] == str(plain_site / "file.duckdb")
