"""Packaged files, a site's own versions of them, `redflags init` and `--version`."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines import resources
from pipelines.errors import UserError
from tests.support import ROOT, SCHEMAS_DIR

INTAKE = (
    "encounter_id,patient_id,encounter_date,age_years,sex,back_pain,night_pain\n"
    "E1,P1,2024-03-01,35,F,true,true\n"
)


def redflags(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != resources.SITE_ENV} | env
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd,
        env=environ | {"PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def scored(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.DictReader(f))


def test_packaged_files_are_the_projects(tmp_path: Path):
    """In a checkout the package's resources are the top-level schemas/ and sql/."""
    packaged = resources.Resources()
    assert (
        packaged.path("schemas/red_flags.yml").read_bytes()
        == (SCHEMAS_DIR / "red_flags.yml").read_bytes()
    )
    assert [p.name for p in packaged.paths("schemas/value_sets", ".csv")] == sorted(
        p.name for p in (SCHEMAS_DIR / "value_sets").glob("*.csv")
    )


def test_a_site_file_replaces_the_packaged_one_of_the_same_name(tmp_path: Path):
    (tmp_path / "schemas" / "value_sets").mkdir(parents=True)
    own = tmp_path / "schemas" / "value_sets" / "conditions.csv"
    own.write_text("value_set,code,code_system,description\n", encoding="utf-8")
    extra = tmp_path / "schemas" / "value_sets" / "local.csv"
    extra.write_text("value_set,code,code_system,description\n", encoding="utf-8")
    site = resources.Resources(tmp_path)
    found = site.paths("schemas/value_sets", ".csv")
    assert own in found and extra in found
    assert resources.packaged_root() / "schemas" / "value_sets" / "conditions.csv" not in found
    # every other file still comes from the package
    assert site.path("schemas/intake.yml") == resources.packaged_root() / "schemas/intake.yml"
    # a site cannot replace the SQL
    (tmp_path / "sql" / "marts").mkdir(parents=True)
    (tmp_path / "sql" / "marts" / "care_gaps.sql").write_text("SELECT 1", encoding="utf-8")
    assert site.path("sql/marts/care_gaps.sql").parent.parent.parent == resources.packaged_root()


def test_the_site_is_the_option_then_the_variable_then_the_working_directory(tmp_path: Path):
    (tmp_path / "here").mkdir()
    assert resources.find_site(None, tmp_path / "here", {}) is None
    (tmp_path / "here" / "redflags.toml").write_text("", encoding="utf-8")
    assert resources.find_site(None, tmp_path / "here", {}) == tmp_path / "here"
    env = {resources.SITE_ENV: str(tmp_path / "env")}
    assert resources.find_site(None, tmp_path / "here", env) == tmp_path / "env"
    assert resources.find_site(tmp_path / "opt", tmp_path / "here", env) == tmp_path / "opt"


def test_a_missing_site_is_one_clear_error(tmp_path: Path):
    with pytest.raises(UserError, match=r"nowhere: no such site folder"):
        resources.use_site(tmp_path / "nowhere")


@pytest.mark.slow
def test_init_writes_a_site_and_refuses_to_overwrite_it(tmp_path: Path):
    result = redflags("init", "site", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    site = tmp_path / "site"
    assert (site / "schemas").is_dir() and (site / "schemas" / "value_sets").is_dir()
    assert list((site / "schemas" / "value_sets").iterdir()) == []
    text = (site / "redflags.toml").read_text(encoding="utf-8")
    assert "# min_cell = 11" in text and "[schedule]" in text
    again = redflags("init", "site", cwd=tmp_path)
    assert again.returncode == 2
    where = Path("site") / "redflags.toml"
    assert again.stderr == f"redflags: error: {where}: exists already; choose a new folder\n"


@pytest.mark.slow
def test_a_site_rule_file_changes_the_score_and_the_rules_version(tmp_path: Path):
    """The same row scored with the packaged rules and with a site that weighs night pain 5."""
    (tmp_path / "intake.csv").write_text(INTAKE, encoding="utf-8")
    packaged = redflags("score", "intake.csv", "--out", "packaged.csv", cwd=tmp_path)
    assert packaged.returncode == 0, packaged.stderr
    assert redflags("init", "site", cwd=tmp_path).returncode == 0
    rules = yaml.safe_load((SCHEMAS_DIR / "red_flags.yml").read_text(encoding="utf-8"))
    assert rules["score"]["weights"]["night_pain"] == 1
    rules["score"]["weights"]["night_pain"] = 5
    (tmp_path / "site" / "schemas" / "red_flags.yml").write_text(
        yaml.safe_dump(rules, sort_keys=False), encoding="utf-8"
    )
    own = redflags("score", "../intake.csv", "--out", "../own.csv", cwd=tmp_path / "site")
    assert own.returncode == 0, own.stderr
    by_option = redflags(
        "score", "intake.csv", "--out", "option.csv", "--site", "site", cwd=tmp_path
    )
    assert by_option.returncode == 0, by_option.stderr
    before, after = scored(tmp_path / "packaged.csv"), scored(tmp_path / "own.csv")
    # 35 years old, back pain with night pain: moderate, the night pain's weight alone
    assert (before["tier"], before["score"]) == ("moderate", "1")
    assert (after["tier"], after["score"]) == ("moderate", "5")
    assert after["rules_version"] != before["rules_version"]
    assert scored(tmp_path / "option.csv") == after


@pytest.mark.slow
def test_a_malformed_site_file_is_one_line_naming_it(tmp_path: Path):
    (tmp_path / "intake.csv").write_text(INTAKE, encoding="utf-8")
    assert redflags("init", "site", cwd=tmp_path).returncode == 0
    bad = tmp_path / "site" / "schemas" / "red_flags.yml"
    bad.write_text("score:\n  weights: [unclosed\n", encoding="utf-8")
    result = redflags("score", "intake.csv", "--out", "o.csv", cwd=tmp_path, REDFLAGS_SITE="site")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"redflags: error: {bad.resolve()}, line 3")
    assert "not valid YAML" in lines[0]


@pytest.mark.slow
def test_version(tmp_path: Path):
    from importlib.metadata import version

    result = redflags("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"redflags {version('redflags')}\n"
