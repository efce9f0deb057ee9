"""Researcher extracts in two tiers: the release's aggregates, and on request a limited
data set of index presentations.

The aggregates are the release (pipelines/disclosure/release.py) as the run made it:
small cells suppressed, and every suppressed cell audited against everything the
release publishes (the report and the run's artifacts included). The record-level table
comes only with `record_level=True`: it lets its holder recompute every suppressed cell,
so it is a limited data set for a data use agreement, and even then it carries no exact
date nor anything that yields one (index year-month; follow-up as one flag per window;
days to an event only within the longest window; the data end as year-month).

The export is written into a temporary directory beside the target and renamed into
place at the end, so a failed export never leaves a partial one behind. It writes only
into a new or empty directory, or, with `replace=True`, over an earlier export whose
manifest lists every file in it: it never deletes what it did not write.
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.cohorts.definition import CohortDefinition, load_definition
from pipelines.disclosure.release import RELEASE_TABLES, Release, read_release
from pipelines.errors import UserError
from pipelines.published import connect_for_analysts
from pipelines.sqltext import identifier

RECORD_LEVEL = "index_presentations"
MANIFEST = "manifest.json"
# What a manifest says it is: `replace` overwrites only a directory whose manifest says so.
KIND = "redflags-export"
# Columns of the record-level table that are replaced (see _record_level_sql).
EXACT_TIME = ("index_date", "followup_days")


def exportable_tables() -> tuple[str, ...]:
    """The release's aggregate tables (the record-level table comes with record_level)."""
    return RELEASE_TABLES


def _record_level_sql(con: duckdb.DuckDBPyConnection, definition: CohortDefinition) -> str:
    """index_presentations as a limited data set: no exact date nor what yields one."""
    columns = [
        c
        for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'marts' AND table_name = ? ORDER BY ordinal_position",
            [RECORD_LEVEL],
        ).fetchall()
        if c not in EXACT_TIME
    ]
    longest = max(definition.windows)
    selected = []
    for column in columns:
        quoted = identifier(column)
        if column == "age_years":  # capped at ingest; an extract never relies on it
            selected.append(f"least({quoted}, 90) AS {quoted}")
        elif column.startswith("days_to_"):
            selected.append(f"CASE WHEN {quoted} <= {longest} THEN {quoted} END AS {quoted}")
        else:
            selected.append(quoted)
    selected.append("strftime(index_date, '%Y-%m') AS index_year_month")
    selected += [
        f"coalesce(followup_days >= {int(w)}, FALSE) AS followed_up_{int(w)}d"
        for w in definition.windows
    ]
    # In a fixed order (the mart's own row order is whatever its joins produced), so
    # that the same marts give the same files, byte for byte.
    return (
        f"SELECT {', '.join(selected)}, CAST(year(index_date) AS INTEGER) AS index_year "
        f"FROM marts.{RECORD_LEVEL} ORDER BY patient_id, index_date, encounter_id"
    )


def _last_run(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, object]:
    row = con.execute(
        "SELECT run_id, rules_version, strftime(data_end, '%Y-%m'), "
        "json_extract(details, '$.ingest.skipped') FROM ops.run_log WHERE run_id = ?",
        [release.audit["run_id"]],
    ).fetchone()
    if row is None:
        raise UserError("the published release names no logged run; run `redflags run` again")
    # the input's entries the run did not read, with the reason (never skipped silently)
    not_read = json.loads(row[3]) if row[3] else []
    return {
        "run_id": row[0],
        "rules_version": row[1],
        "data_end_month": row[2],
        "input_not_read": not_read,
    }


def _schema(table: pa.Table) -> dict[str, str]:
    return {f.name: str(f.type) for f in table.schema}


def write_extracts(
    con: duckdb.DuckDBPyConnection,
    target: Path,
    tables: tuple[str, ...],
    record_level: bool,
    definition: CohortDefinition,
) -> dict[str, object]:
    """Write the requested tables into `target` (an empty directory) and its manifest."""
    release = read_release(con)
    run = _last_run(con, release)
    files: list[dict[str, object]] = []
    schemas: dict[str, dict[str, str]] = {}
    for name in tables:
        frame = release.tables[name]
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        path = target / f"{name}.parquet"
        pq.write_table(arrow, path, compression="zstd")
        schemas[name] = _schema(arrow)
        files.append(
            {
                "table": name,
                "path": path.name,
                "rows": arrow.num_rows,
                "suppressed_rows": int(frame["suppressed"].sum()),
            }
        )
    if record_level:
        arrow = con.sql(_record_level_sql(con, definition)).to_arrow_table()
        directory = target / RECORD_LEVEL
        pq.write_to_dataset(
            arrow,
            directory,
            partition_cols=["index_year"],
            compression="zstd",
            basename_template="part-{i}.parquet",
            preserve_order=True,
        )
        schemas[RECORD_LEVEL] = _schema(arrow)
        for path in sorted(directory.rglob("*.parquet")):
            files.append(
                {
                    "table": RECORD_LEVEL,
                    "path": path.relative_to(target).as_posix(),
                    "rows": pq.read_metadata(path).num_rows,
                }
            )
    manifest: dict[str, object] = {
        "kind": KIND,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **run,
        "cohorts_version": definition.version,
        "tables": [*tables, *([RECORD_LEVEL] if record_level else [])],
        "files": files,
        "schema": schemas,
        "suppression": {
            "min_cell": release.min_cell,
            "primary": f"counts from 1 to {release.min_cell - 1} are NULL",
            "secondary": "more cells wherever a suppressed one could be narrowed to fewer "
            f"than {release.min_cell} values from everything the release publishes; "
            "see docs/marts.md, Disclosure control",
            "derived": "rates, intervals and medians of a row with a suppressed count are NULL",
            "flag_column": "suppressed",
        },
        "audit": {k: v for k, v in release.audit.items() if k != "run_id"},
    }
    if record_level:
        manifest["record_level"] = {
            "table": RECORD_LEVEL,
            "release_tier": "limited data set: row per index presentation; anyone holding it "
            "can recompute every suppressed count of the aggregates, so it is shared only "
            "under a data use agreement",
            "dates": "no exact date: index_year_month (and the index_year partition); "
            "followed_up_<w>d says whether follow-up covers each window; days_to_* are kept "
            f"only up to {max(definition.windows)} days; the data end is given as a month",
            "free_text": "none",
        }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _check_target(out: Path, replace: bool) -> None:
    """Refuse a target that holds anything this export did not write before."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another --out", exit_code=2)
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not replace:
        raise UserError(
            f"{out}: not empty; choose a new or empty --out, or pass --replace to replace "
            "an earlier export there",
            exit_code=2,
        )
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        listed = {MANIFEST, *(f["path"] for f in manifest["files"])}
        is_export = manifest.get("kind") == KIND
    except (OSError, ValueError, KeyError, TypeError):
        is_export, listed = False, set()
    present = {p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir()}
    if not is_export:
        raise UserError(
            f"{out}: --replace replaces only an earlier export, and this directory has no "
            f"export manifest; choose another --out",
            exit_code=2,
        )
    foreign = sorted(present - listed)
    if foreign:
        raise UserError(
            f"{out}: holds files the earlier export did not write ({', '.join(foreign[:5])}"
            f"{', …' if len(foreign) > 5 else ''}); move them or choose another --out",
            exit_code=2,
        )


def export(
    warehouse: str | Path,
    out: str | Path,
    *,
    tables: tuple[str, ...] | None = None,
    record_level: bool = False,
    replace: bool = False,
) -> dict[str, object]:
    """Export the release of the published marts to `out` (see the module's docstring)."""
    definition = load_definition()
    if tables is not None:
        if RECORD_LEVEL in tables:
            raise UserError(
                f"--tables {RECORD_LEVEL}: the record-level table comes with --record-level",
                exit_code=2,
            )
        for name in tables:
            if name not in exportable_tables():
                raise UserError(
                    f"--tables {name}: not in the release; choose from "
                    f"{', '.join(exportable_tables())}",
                    exit_code=2,
                )
    chosen = tuple(tables) if tables is not None else exportable_tables()
    out = Path(out)
    _check_target(out, replace)
    # The published copy, like the report: one publication, and never a wait for a run.
    con = connect_for_analysts(warehouse)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        manifest = write_extracts(con, staging, chosen, record_level, definition)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        con.close()
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)
    return manifest
