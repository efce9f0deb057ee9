"""Researcher extracts: Parquet (zstd) with no free text, no exact dates, small cells suppressed.

The export is written into a temporary directory beside the target and renamed into
place at the end, so a failed export never leaves a partial one behind.
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
from pipelines.cohorts.suppression import SuppressionRules, suppress
from pipelines.errors import UserError
from pipelines.warehouse import connect

RECORD_LEVEL = "index_presentations"
NOT_EXPORTED = {"care_gaps": "an operational list with dates, for clinicians, not researchers"}
_RATES = ("rate", "ci_low", "ci_high")


def aggregate_rules(definition: CohortDefinition) -> dict[str, SuppressionRules]:
    """How the counts of each aggregate mart hang together (see docs/marts.md, Extracts)."""
    partitioning = tuple(t for t in definition.stratum_types if t not in ("all", "flag"))
    return {
        "cohort_summary": SuppressionRules(
            counts=("n_eligible", "n_events", "n_censored"),
            derived=(*_RATES, "median_days_to_event"),
            row_groups=(("n_eligible", "n_censored"),),
            total_column="stratum_type",
            keys=("window_days", "outcome"),
            group_column="stratum_type",
            part_values=partitioning,
        ),
        "time_to_referral": SuppressionRules(
            counts=("n_at_risk", "n_events"),
            derived=("cumulative_incidence", "ci_low", "ci_high"),
            total_column="tier",
            keys=("day",),
            cascade_by=("tier",),
            cascade_order="day",
        ),
        "imaging_overuse": SuppressionRules(
            counts=("n_eligible", "n_imaged", "n_not_imaged", "n_censored"),
            derived=("share_not_imaged", "ci_low", "ci_high"),
            row_groups=(("n_imaged", "n_not_imaged"), ("n_eligible", "n_censored")),
            total_column="stratum_type",
            keys=("window_days",),
            group_column="stratum_type",
            part_values=("age_band", "sex"),
        ),
        "rule_performance": SuppressionRules(
            counts=("tp", "fp", "fn", "tn"),
            derived=("sensitivity", "specificity", "ppv", "npv", "lr_positive"),
            row_groups=(("tp", "fn"), ("fp", "tn")),
        ),
        "documentation_quality": SuppressionRules(
            counts=("n_presentations", "n_documented", "n_missing"),
            derived=("share_documented",),
            row_groups=(("n_documented", "n_missing"),),
            total_column="tier",
            keys=("field",),
        ),
    }


def exportable_tables() -> tuple[str, ...]:
    """The record-level mart, then every aggregate mart that has suppression rules."""
    return (RECORD_LEVEL, *aggregate_rules(load_definition()))


def _record_level_sql(con: duckdb.DuckDBPyConnection) -> str:
    """index_presentations without exact dates: index_date -> year-month and year."""
    columns = [
        c
        for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'marts' AND table_name = ? ORDER BY ordinal_position",
            [RECORD_LEVEL],
        ).fetchall()
        if c != "index_date"
    ]
    # ages stay capped at 90 (the intake contract caps them; an extract never relies on it)
    columns = [f"least({c}, 90) AS {c}" if c == "age_years" else c for c in columns]
    # In a fixed order (the mart's own row order is whatever its joins produced), so
    # that the same marts give the same files, byte for byte.
    return (
        f"SELECT {', '.join(columns)}, strftime(index_date, '%Y-%m') AS index_year_month, "
        f"CAST(year(index_date) AS INTEGER) AS index_year FROM marts.{RECORD_LEVEL} "
        "ORDER BY patient_id, index_date, encounter_id"
    )


def _last_run(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    row = con.execute(
        """SELECT run_id, rules_version, CAST(data_end AS VARCHAR)
           FROM ops.run_log
           WHERE json_extract_string(details, '$.marts_published_at') IS NOT NULL
           ORDER BY json_extract_string(details, '$.marts_published_at') DESC LIMIT 1"""
    ).fetchone()
    if row is None:
        raise UserError("the warehouse has no published marts; run `redflags run` first")
    return {"run_id": row[0], "rules_version": row[1], "data_end": row[2]}


def _schema(table: pa.Table) -> dict[str, str]:
    return {f.name: str(f.type) for f in table.schema}


def write_extracts(
    con: duckdb.DuckDBPyConnection,
    target: Path,
    tables: tuple[str, ...],
    min_cell: int,
    definition: CohortDefinition,
) -> dict[str, object]:
    """Write every requested table into `target` (an empty directory) and its manifest."""
    rules = aggregate_rules(definition)
    run = _last_run(con)
    files: list[dict[str, object]] = []
    schemas: dict[str, dict[str, str]] = {}
    for name in tables:
        if name == RECORD_LEVEL:
            arrow = con.sql(_record_level_sql(con)).to_arrow_table()
            directory = target / RECORD_LEVEL
            pq.write_to_dataset(
                arrow,
                directory,
                partition_cols=["index_year"],
                compression="zstd",
                basename_template="part-{i}.parquet",
                preserve_order=True,
            )
            schemas[name] = _schema(arrow)
            for path in sorted(directory.rglob("*.parquet")):
                files.append(
                    {
                        "table": name,
                        "path": path.relative_to(target).as_posix(),
                        "rows": pq.read_metadata(path).num_rows,
                    }
                )
            continue
        frame = con.execute(f"SELECT * FROM marts.{name}").df()
        frame = suppress(frame, rules[name], min_cell)
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
    manifest = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **run,
        "cohorts_version": definition.version,
        "tables": list(tables),
        "files": files,
        "schema": schemas,
        "suppression": {
            "min_cell": min_cell,
            "primary": f"counts from 1 to {min_cell - 1} are NULL",
            "complementary": "a second cell wherever a suppressed one could be recovered "
            "by subtraction from a total; see docs/marts.md, Extracts",
            "derived": "rates, intervals and medians of a row with a suppressed count are NULL",
            "flag_column": "suppressed",
        },
        "record_level": {
            "table": RECORD_LEVEL,
            "dates": "index_date replaced by index_year_month and the index_year partition; "
            "other times are days since the index",
            "free_text": "none",
        },
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def export(
    warehouse: str | Path,
    out: str | Path,
    *,
    tables: tuple[str, ...] | None = None,
    min_cell: int | None = None,
) -> dict[str, object]:
    """Export the published marts to `out`, replacing an earlier export there atomically."""
    definition = load_definition()
    min_cell = definition.min_cell if min_cell is None else min_cell
    if min_cell < 1:
        raise UserError(f"--min-cell {min_cell}: must be 1 or more (11 by default)", exit_code=2)
    tables = tables or exportable_tables()
    for name in tables:
        if name in NOT_EXPORTED:
            raise UserError(f"--tables {name}: not exported ({NOT_EXPORTED[name]})", exit_code=2)
        if name not in exportable_tables():
            raise UserError(
                f"--tables {name}: no such mart; choose from {', '.join(exportable_tables())}",
                exit_code=2,
            )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another --out", exit_code=2)
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise UserError(
            f"{out}: a non-empty directory that is not an earlier export; "
            "choose an empty or new --out",
            exit_code=2,
        )
    # Read-only like the report, and with the same configuration, so that it shares the
    # database with the flow's reader connection (the export runs only its own queries).
    con = connect(warehouse, read_only=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        manifest = write_extracts(con, staging, tuple(tables), min_cell, definition)
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
