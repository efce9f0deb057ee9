"""Settings of a command, in one place: `redflags.toml`, `REDFLAGS_*` variables, CLI options.

Precedence, lowest first: the defaults below, the TOML file, the environment, the
command line. Every key is declared once in `KEYS` (name, parser, help; the default is
the Settings field's); docs/configuration.md documents the same keys and a test checks
they agree. A bad value stops the command before anything starts, with one line naming
the key and where the value came from.

The file is the site's (`redflags init DIR`): `--config FILE`, else `redflags.toml` of
the site folder (`--site DIR`, REDFLAGS_SITE, or the working directory when it holds a
redflags.toml). Relative paths of the defaults are relative to the site folder, or to
the working directory when there is no site. `docs_dir` left unset follows the warehouse
(`docs/` beside it), wherever the warehouse was set.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.errors import UserError
from pipelines.resources import CONFIG_FILE, find_site
from pipelines.scoring.engines import DEFAULT_ENGINE, ENGINES
from pipelines.sources.adapters import CANONICAL, SOURCE_KINDS

ENV_PREFIX = "REDFLAGS_"
# Paths of the defaults, relative to the site folder (or the working directory).
DEFAULT_INPUT_DIR = Path("data") / "sample"
DEFAULT_WAREHOUSE = Path("data") / "warehouse.duckdb"
DEFAULT_EXPORT_DIR = Path("data") / "exports"
# The Data Docs go into this folder beside the warehouse unless `docs_dir` is set.
DOCS_BESIDE_WAREHOUSE = "docs"
PATH_FIELDS = ("input_dir", "warehouse", "export_dir")
# DuckDB's memory limit of a run (its default, 80% of the machine, would let a run's sorts
# and hash tables grow with the input instead of spilling to disk).
DEFAULT_MEMORY_LIMIT = "3GB"
# The earliest date a date column may hold unless the site sets `date_min`: earlier ones
# (year 0, negative years, 1899 typed for 1999) are quarantined per value.
DEFAULT_DATE_MIN = date(1900, 1, 1)
# How many runs' validation pages the Data Docs keep (older runs' pages are removed).
DEFAULT_DOCS_KEEP = 30
# A file with a larger share of its rows quarantined stops the run before scoring: a
# run that keeps only a few rows must not publish marts that look like a good night's.
DEFAULT_MAX_QUARANTINE_SHARE = 0.5
# What becomes of a date after the load date in a column marked `not_after_load_date`:
# "quarantine" (a typo or a clock error) or "accept" (a source whose dates are shifted
# into the future on purpose, as de-identified research data sets do).
FUTURE_DATES = ("quarantine", "accept")
DEFAULT_FUTURE_DATES = "quarantine"

Engine = Literal["pandas", "duckdb"]


@dataclass(frozen=True)
class Settings:
    """Everything a run or the scheduler needs to know; immutable once validated."""

    input_dir: Path = DEFAULT_INPUT_DIR
    source: str = CANONICAL
    warehouse: Path = DEFAULT_WAREHOUSE
    export_dir: Path = DEFAULT_EXPORT_DIR
    # The validation reports (Data Docs); None: `docs/` beside the warehouse, which
    # `load_settings` fills in, so a loaded Settings always holds a path.
    docs_dir: Path | None = None
    engine: Engine = DEFAULT_ENGINE
    # None: the windows of schemas/cohorts.yml.
    windows: tuple[int, ...] | None = None
    min_cell: int = 11
    schedule_cron: str = "0 2 * * *"
    schedule_timezone: str = "UTC"
    lock_timeout: float = 300.0
    # DuckDB's memory limit for a run; its sorts and joins spill to disk beyond it.
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    # Dask: 0 runs every task in this process; N > 0 prepares files on a local cluster of
    # N worker processes; an address prepares them on that running cluster instead.
    workers: int = 0
    dask_address: str | None = None
    # The plausible dates of every date column; `date_max` None means the load date (a
    # site that accepts future dates in columns without `not_after_load_date` sets it).
    date_min: date = DEFAULT_DATE_MIN
    date_max: date | None = None
    # The validation pages (Data Docs) of this many runs are kept, the newest.
    docs_keep: int = DEFAULT_DOCS_KEEP
    max_quarantine_share: float = DEFAULT_MAX_QUARANTINE_SHARE
    future_dates: str = DEFAULT_FUTURE_DATES
    # Where the settings came from, for messages; not a key.
    origin: str = "defaults"
    # The site folder whose files replace the packaged ones (None: the package's only).
    site: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        """The keys and their values, as plain JSON-friendly values (for the run log)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("origin", "site"):
                continue
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path | date) else value
        if out["windows"] is not None:
            out["windows"] = list(out["windows"])
        return out


# --- parsers: each takes a raw value (TOML value or env string) and returns the typed one,
# or raises ValueError with what is wrong and what is expected.


def parse_path(value: Any) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty path string")
    return Path(value).expanduser()


def parse_engine(value: Any) -> str:
    if value not in ENGINES:
        raise ValueError(f"{value!r} is not an engine; use one of {', '.join(ENGINES)}")
    return value


def parse_source(value: Any) -> str:
    if value not in SOURCE_KINDS:
        raise ValueError(f"{value!r} is not a source kind; use one of {', '.join(SOURCE_KINDS)}")
    return value


def parse_int(value: Any, *, minimum: int) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a whole number") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not a whole number")
    if value < minimum:
        raise ValueError(f"{value} is below the minimum of {minimum}")
    return value


def parse_min_cell(value: Any) -> int:
    return parse_int(value, minimum=1)


def parse_number(value: Any, what: str) -> float:
    """A number from TOML or the environment's text; `what` says what was expected."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not {what}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not {what}")
    return value


def parse_seconds(value: Any) -> float:
    value = parse_number(value, "a number of seconds")
    if value < 0:
        raise ValueError(f"{value} is negative; use 0 to fail at once when the warehouse is busy")
    return float(value)


MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


def parse_memory(value: Any) -> str:
    if not isinstance(value, str) or not MEMORY_SIZE.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not a size; write it like '3GB' or '512MB'")
    return value.strip()


def parse_share(value: Any) -> float:
    """A share of rows, from 0 to 1 (TOML number or env text)."""
    value = parse_number(value, "a number from 0 to 1")
    if not 0 <= value <= 1:
        raise ValueError(f"{value} is not a share from 0 to 1 (0.5 is half the rows)")
    return float(value)


def parse_future_dates(value: Any) -> str:
    if value not in FUTURE_DATES:
        raise ValueError(f"{value!r} is not one of {', '.join(FUTURE_DATES)}")
    return value


def parse_docs_keep(value: Any) -> int:
    return parse_int(value, minimum=1)


def parse_workers(value: Any) -> int:
    return parse_int(value, minimum=0)


DASK_ADDRESS = re.compile(r"(tcp|tls|inproc|ucx|ws|wss)://[^\s/:]+(:\d{1,5})?(/.*)?")


def parse_dask_address(value: Any) -> str:
    """The address of a running Dask scheduler, such as tcp://10.0.0.5:8786."""
    if not isinstance(value, str) or not DASK_ADDRESS.fullmatch(value.strip()):
        raise ValueError(
            f"{value!r} is not a Dask scheduler address; write it like 'tcp://10.0.0.5:8786'"
        )
    return value.strip()


def parse_windows(value: Any) -> tuple[int, ...]:
    """A list of day counts (TOML array, or `1,14,28,90` in the environment)."""
    if isinstance(value, str):
        value = [part for part in value.replace(" ", "").split(",") if part]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("expected a non-empty list of days, e.g. [1, 14, 28, 90]")
    days = tuple(parse_int(v, minimum=0) for v in value)
    if len(set(days)) != len(days):
        raise ValueError(f"{list(days)} lists a window twice")
    return tuple(sorted(days))


def parse_cron(value: Any) -> str:
    from cronsim import CronSim, CronSimError  # a small library Prefect itself depends on

    if not isinstance(value, str):
        raise ValueError("expected a cron string such as '0 2 * * *'")
    try:
        CronSim(value, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"{value!r} is not a cron expression ({exc})") from None
    return value


def parse_timezone(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected an IANA time zone such as 'Europe/London'")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Europe/London')") from None
    return value


def parse_date(value: Any) -> date:
    """A calendar date: a TOML date (`date_min = 1900-01-01`) or ISO text."""
    if isinstance(value, datetime):
        raise ValueError(f"{value.isoformat()} has a time of day; write a date like 1900-01-01")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date; write it like 1900-01-01")


@dataclass(frozen=True)
class Key:
    """One setting: its field, its TOML spelling (`table.key` for nested), how to parse it."""

    field: str
    toml: str
    parse: Callable[[Any], Any]
    help: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.toml.upper().replace(".", "_")


KEYS: tuple[Key, ...] = (
    Key("input_dir", "input_dir", parse_path, "directory of input files"),
    Key("source", "source", parse_source, "kind of input: canonical, omop or fhir"),
    Key("warehouse", "warehouse", parse_path, "the DuckDB warehouse file"),
    Key("export_dir", "export_dir", parse_path, "where researcher extracts are written"),
    Key("docs_dir", "docs_dir", parse_path, "where the validation reports (Data Docs) go"),
    Key("engine", "engine", parse_engine, "scoring engine: pandas or duckdb"),
    Key("windows", "windows", parse_windows, "follow-up windows in days"),
    Key("min_cell", "min_cell", parse_min_cell, "smallest count shown in extracts"),
    Key("schedule_cron", "schedule.cron", parse_cron, "when `redflags serve` runs the flow"),
    Key("schedule_timezone", "schedule.timezone", parse_timezone, "time zone of the cron"),
    Key("lock_timeout", "lock_timeout", parse_seconds, "seconds to wait for a busy warehouse"),
    Key("memory_limit", "memory_limit", parse_memory, "DuckDB's memory limit for a run"),
    Key("workers", "workers", parse_workers, "Dask worker processes of a local cluster"),
    Key("dask_address", "dask_address", parse_dask_address, "a running Dask scheduler"),
    Key("date_min", "date_min", parse_date, "earliest plausible date of a date column"),
    Key("date_max", "date_max", parse_date, "latest plausible date of a date column"),
    Key("docs_keep", "docs_keep", parse_docs_keep, "runs whose validation pages are kept"),
    Key(
        "max_quarantine_share",
        "max_quarantine_share",
        parse_share,
        "largest share of a file's rows quarantined before a run stops",
    ),
    Key(
        "future_dates",
        "future_dates",
        parse_future_dates,
        "dates after the load date: quarantine or accept (date-shifted sources)",
    ),
)
KEYS_BY_TOML: dict[str, Key] = {k.toml: k for k in KEYS}
KEYS_BY_FIELD: dict[str, Key] = {k.field: k for k in KEYS}


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"schedule": {"cron": x}}` -> `{"schedule.cron": x}`, so nested keys are checked too."""
    flat: dict[str, Any] = {}
    for name, value in table.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def read_toml(path: Path) -> dict[str, Any]:
    """The file's settings by field name; unknown keys are an error, not silently ignored."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        message = f"{path}: cannot read the config file ({exc.strerror})"
        raise UserError(message, exit_code=2) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})", exit_code=2) from None
    values: dict[str, Any] = {}
    base = path.parent
    for dotted, raw in flatten(data).items():
        key = KEYS_BY_TOML.get(dotted)
        if key is None:
            known = ", ".join(k.toml for k in KEYS)
            raise UserError(f"{path}: unknown key '{dotted}'; known keys: {known}", exit_code=2)
        value = parse_or_fail(key, raw, f"{path}: key '{dotted}'")
        # Relative paths in a file mean relative to that file, so it works from any directory.
        if isinstance(value, Path) and not value.is_absolute():
            value = base / value
        values[key.field] = value
    return values


def read_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from `REDFLAGS_*` variables; other REDFLAGS_ variables are left alone."""
    return {
        key.field: parse_or_fail(key, environ[key.env], f"environment variable {key.env}")
        for key in KEYS
        if environ.get(key.env, "") != ""
    }


def parse_or_fail(key: Key, raw: Any, where: str) -> Any:
    try:
        return key.parse(raw)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}", exit_code=2) from None


def find_config_file(explicit: Path | None, site: Path | None) -> Path | None:
    """`--config PATH` must exist; otherwise the site's `redflags.toml`, if any."""
    if explicit is not None:
        if not explicit.is_file():
            raise UserError(f"{explicit}: no such config file (given by --config)", exit_code=2)
        return explicit
    if site is None:
        return None
    candidate = site / CONFIG_FILE
    return candidate if candidate.is_file() else None


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    site: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    option_names: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults < TOML file < environment < `overrides` (CLI options; None means not given).

    CLI overrides arrive typed (typer parsed them) but go through the same parser, so
    `--min-cell 0` fails with the same message as `min_cell = 0` in the file; the message
    names the option as `option_names` spells it (by default `--` and the key).
    """
    environ = os.environ if environ is None else environ
    site = find_site(site, cwd or Path.cwd(), dict(environ))
    if site is not None and not site.is_dir():
        raise UserError(
            f"{site}: no such site folder (make one with `redflags init DIR`)", exit_code=2
        )
    path = find_config_file(config_file, site)
    values: dict[str, Any] = {}
    if site is not None:
        defaults = Settings()
        values.update({name: site / getattr(defaults, name) for name in PATH_FIELDS})
    sources: list[str] = []
    if path is not None:
        values.update(read_toml(path))
        sources.append(str(path))
    from_env = read_env(environ)
    if from_env:
        values.update(from_env)
        sources.append("environment")
    given = {name: v for name, v in (overrides or {}).items() if v is not None}
    for name, value in given.items():
        raw = str(value) if isinstance(value, Path) else value
        if isinstance(raw, tuple | list):
            raw = list(raw)
        option = (option_names or {}).get(name) or "--" + name.replace("_", "-")
        values[name] = parse_or_fail(KEYS_BY_FIELD[name], raw, f"option {option}")
    if given:
        sources.append("command line")
    origin = " + ".join(sources) or "defaults"
    date_min, date_max = values.get("date_min", DEFAULT_DATE_MIN), values.get("date_max")
    if date_max is not None and date_max < date_min:
        raise UserError(
            f"{origin}: date_max = {date_max} is before date_min = {date_min}; no date could "
            "be accepted: correct one of them",
            exit_code=2,
        )
    if values.get("workers") and values.get("dask_address"):
        raise UserError(
            f"{origin}: workers = {values['workers']} and dask_address = "
            f"{values['dask_address']!r} both set; a run uses either a local cluster of "
            "workers or the cluster at dask_address: drop one",
            exit_code=2,
        )
    if values.get("docs_dir") is None:
        warehouse = values.get("warehouse", Settings().warehouse)
        values["docs_dir"] = warehouse.parent / DOCS_BESIDE_WAREHOUSE  # as docs.default_docs_dir
    return replace(Settings(), **values, origin=origin, site=site.resolve() if site else None)


def _toml_value(value: Any) -> str:
    if isinstance(value, Path):
        return f'"{value.as_posix()}"'
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, date):
        return value.isoformat()  # a TOML local date
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


# Keys whose default is "not set": what `redflags init` shows instead, and the default.
EXAMPLES: dict[str, tuple[str, str]] = {
    "windows": ("[1, 14, 28, 90]", "the windows of schemas/cohorts.yml"),
    "docs_dir": ('"data/docs"', "docs/ beside the warehouse"),
    "dask_address": ('"tcp://10.0.0.5:8786"', "not set"),
    "date_max": ("2030-12-31", "the load date"),
}


def default_text(field: str) -> str:
    """A key's default as the help and `redflags init` show it."""
    if field in EXAMPLES:
        return EXAMPLES[field][1]
    return _toml_value(getattr(Settings(), field)).strip('"')


def site_config_text() -> str:
    """The redflags.toml that `redflags init` writes: every key, commented out at its
    default, with what it means; a site uncomments what it changes."""
    defaults = Settings()
    lines = [
        "# redflags settings of this site. Every key is optional: each is shown commented out",
        "# at its default. REDFLAGS_<KEY> environment variables override this file (e.g.",
        "# REDFLAGS_MIN_CELL=20), and command-line options override both. Relative paths are",
        "# relative to this file. Files in schemas/ and schemas/value_sets/ beside this file",
        "# replace the packaged ones of the same name (see the README, 'Your own site').",
        "",
    ]
    tables: dict[str, list[str]] = {}
    for key in KEYS:
        value = getattr(defaults, key.field)
        table, _, name = key.toml.rpartition(".")
        help_line, shown = f"# {key.help}", f"# {name} = {_toml_value(value)}"
        if key.field in EXAMPLES:  # no default value to show: an example, and the default
            example, default = EXAMPLES[key.field]
            help_line, shown = f"{help_line} (default: {default})", f"# {name} = {example}"
        tables.setdefault(table, []).extend([help_line, shown, ""])
    for table, entries in tables.items():
        if table:
            lines.append(f"[{table}]")
        lines.extend(entries)
    return "\n".join(lines).rstrip() + "\n"
