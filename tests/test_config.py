"""Settings: defaults < redflags.toml < REDFLAGS_* < CLI options, and one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from pipelines.config import KEYS, Settings, load_settings, site_config_text
from pipelines.errors import UserError
from tests.support import ROOT


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment(tmp_path: Path):
    s = load_settings(environ={}, cwd=tmp_path)
    assert s.engine == "duckdb"
    assert s.min_cell == 11
    assert s.windows is None
    assert s.schedule_cron == "0 2 * * *"
    assert s.schedule_timezone == "UTC"
    assert s.lock_timeout == 300.0
    assert s.warehouse == Path("data/warehouse.duckdb")
    assert s.origin == "defaults"
    assert s.source == "canonical"
    assert s.docs_dir == Path("data/docs")


def test_docs_dir_follows_the_warehouse_unless_set(tmp_path: Path):
    """`docs/` beside the warehouse, wherever the warehouse was set; docs_dir wins."""
    write(tmp_path / "redflags.toml", 'warehouse = "w/main.duckdb"\n')
    assert load_settings(environ={}, cwd=tmp_path).docs_dir == tmp_path / "w" / "docs"
    env = {"REDFLAGS_WAREHOUSE": "/srv/rf/warehouse.duckdb"}
    assert load_settings(environ=env, cwd=tmp_path).docs_dir == Path("/srv/rf/docs")
    with_option = load_settings(None, {"warehouse": Path("/x/w.duckdb")}, environ={}, cwd=tmp_path)
    assert with_option.docs_dir == Path("/x/docs")
    write(tmp_path / "redflags.toml", 'warehouse = "w/main.duckdb"\ndocs_dir = "pages"\n')
    assert load_settings(environ=env, cwd=tmp_path).docs_dir == tmp_path / "pages"
    env["REDFLAGS_DOCS_DIR"] = "/srv/pages"
    assert load_settings(environ=env, cwd=tmp_path).docs_dir == Path("/srv/pages")


def test_file_then_environment_then_options(tmp_path: Path):
    write(
        tmp_path / "redflags.toml",
        'engine = "pandas"\nmin_cell = 5\nwarehouse = "w/main.duckdb"\nwindows = [28, 7]\n'
        'lock_timeout = 12\n[schedule]\ncron = "30 1 * * 1-5"\ntimezone = "Europe/London"\n',
    )
    from_file = load_settings(environ={}, cwd=tmp_path)
    assert from_file.engine == "pandas"
    assert from_file.min_cell == 5
    assert from_file.windows == (7, 28)
    assert from_file.lock_timeout == 12.0
    assert from_file.schedule_cron == "30 1 * * 1-5"
    assert from_file.schedule_timezone == "Europe/London"
    # A relative path in the file is relative to the file, not to the working directory.
    assert from_file.warehouse == tmp_path / "w" / "main.duckdb"
    assert from_file.origin == str(tmp_path / "redflags.toml")

    env = {"REDFLAGS_MIN_CELL": "20", "REDFLAGS_WINDOWS": "1, 90", "REDFLAGS_ENGINE": ""}
    with_env = load_settings(environ=env, cwd=tmp_path)
    assert with_env.min_cell == 20
    assert with_env.windows == (1, 90)
    assert with_env.engine == "pandas"  # an empty variable is not a setting

    with_cli = load_settings(
        None, {"min_cell": 30, "engine": None, "lock_timeout": 0.0}, environ=env, cwd=tmp_path
    )
    assert with_cli.min_cell == 30
    assert with_cli.engine == "pandas"
    assert with_cli.lock_timeout == 0.0
    assert with_cli.origin.endswith("environment + command line")


def test_explicit_config_file_wins_over_working_directory(tmp_path: Path):
    write(tmp_path / "redflags.toml", "min_cell = 5\n")
    other = write(tmp_path / "other.toml", "lock_timeout = 2\n")
    s = load_settings(other, environ={}, cwd=tmp_path)
    assert s.min_cell == 11
    assert s.lock_timeout == 2.0


BAD_FILES = [
    ('source = "csv"\n', "key 'source': 'csv' is not a source kind; use one of canonical, omop"),
    ('engine = "spark"\n', "key 'engine': 'spark' is not an engine; use one of pandas, duckdb"),
    ("min_cell = 0\n", "key 'min_cell': 0 is below the minimum of 1"),
    ("min_cell = 2.5\n", "key 'min_cell': 2.5 is not a whole number"),
    ("windows = [28, 28]\n", "key 'windows': [28, 28] lists a window twice"),
    ("windows = []\n", "key 'windows': expected a non-empty list of days"),
    ("lock_timeout = -1\n", "key 'lock_timeout': -1 is negative; use 0 to fail at once"),
    ('memory_limit = "lots"\n', "key 'memory_limit': 'lots' is not a size; write it like '3GB'"),
    ("memory_limit = 3\n", "key 'memory_limit': 3 is not a size"),
    ('[schedule]\ncron = "0 25 * * *"\n', "key 'schedule.cron': '0 25 * * *' is not a cron"),
    ('[schedule]\ntimezone = "Mars/Olympus"\n', "'Mars/Olympus' is not an IANA time zone"),
    ('warehose = "x.duckdb"\n', "unknown key 'warehose'; known keys: input_dir, source, warehouse"),
    ("[schedule]\ncorn = 1\n", "unknown key 'schedule.corn'"),
    ("min_cell = \n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_file_value_names_file_and_key(tmp_path: Path, text: str, message: str):
    path = write(tmp_path / "redflags.toml", text)
    with pytest.raises(UserError) as err:
        load_settings(environ={}, cwd=tmp_path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_bad_environment_value_names_the_variable(tmp_path: Path):
    with pytest.raises(UserError, match=r"^environment variable REDFLAGS_MIN_CELL: 'ten' is not"):
        load_settings(environ={"REDFLAGS_MIN_CELL": "ten"}, cwd=tmp_path)
    with pytest.raises(UserError, match=r"^environment variable REDFLAGS_SCHEDULE_TIMEZONE: "):
        load_settings(environ={"REDFLAGS_SCHEDULE_TIMEZONE": "Nowhere"}, cwd=tmp_path)


def test_bad_option_value_names_the_option(tmp_path: Path):
    with pytest.raises(UserError, match=r"^option --engine: 'spark' is not an engine"):
        load_settings(None, {"engine": "spark"}, environ={}, cwd=tmp_path)
    # ... as the command spells it
    names = {"export_dir": "--out"}
    with pytest.raises(UserError, match=r"^option --out: expected a non-empty path string"):
        load_settings(None, {"export_dir": " "}, environ={}, cwd=tmp_path, option_names=names)


def test_missing_config_file_is_an_error(tmp_path: Path):
    with pytest.raises(UserError, match=r"nope.toml: no such config file \(given by --config\)"):
        load_settings(tmp_path / "nope.toml", environ={}, cwd=tmp_path)


def test_site_file_lists_every_key_at_its_default(tmp_path: Path):
    """`redflags init`'s file sets nothing; uncommented, every key is at its default."""
    text = site_config_text()
    (tmp_path / "redflags.toml").write_text(text, encoding="utf-8")
    assert load_settings(environ={}, cwd=tmp_path).origin == str(tmp_path / "redflags.toml")
    uncommented = re.sub(r"^# ([a-z_]+ = )", r"\1", text, flags=re.MULTILINE)
    (tmp_path / "redflags.toml").write_text(uncommented, encoding="utf-8")
    site = load_settings(environ={}, cwd=tmp_path)
    defaults = Settings()
    for key in KEYS:
        value, default = getattr(site, key.field), getattr(defaults, key.field)
        if key.field == "windows":
            assert value == (1, 14, 28, 90)
        elif key.field == "dask_address":
            assert value == "tcp://10.0.0.5:8786"
        elif key.field == "date_max":
            assert value == date(2030, 12, 31)
        elif key.field == "docs_dir":
            assert value == tmp_path / "data" / "docs"
        elif isinstance(value, Path):
            # Relative paths are relative to the site folder.
            assert value == tmp_path / default, key.field
        else:
            assert value == default, key.field
    # ... and `dask_address` with `workers = 0` is a valid pair.
    assert site.workers == 0


def test_every_key_is_documented():
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for key in KEYS:
        assert f"| `{key.toml}` | `{key.env}` |" in doc, key.toml
        name = key.toml.split(".")[-1]
        assert re.search(rf"^# {name} = ", site_config_text(), re.MULTILINE), key.toml


def test_cli_reports_a_bad_setting_in_one_line(tmp_path: Path):
    write(tmp_path / "redflags.toml", "min_cell = -3\n")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"redflags: error: {tmp_path / 'redflags.toml'}: key 'min_cell': -3 is below the "
        "minimum of 1\n"
    )
