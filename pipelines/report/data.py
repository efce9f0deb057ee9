"""What the report reads from the warehouse: marts.*, ops.* and the run they came from.

Every table is optional here. A stage that has not run, or a mart that a run
leaves empty (rule_performance without diagnoses), becomes `None` or an empty
frame, and the report says "not available" in its place instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pipelines.report.palette import POORLY_DOCUMENTED_BELOW, RATE_OUTCOME
from pipelines.warehouse import connect

# Marts small enough to read whole (a few hundred rows at most).
SMALL_MARTS: tuple[str, ...] = (
    "time_to_referral",
    "imaging_overuse",
    "rule_performance",
    "documentation_quality",
)
# index_presentations is record-level (millions of rows at scale): the report reads it
# counted by tier and documentation in DuckDB, never row by row.
INDEX_TIER_COUNTS_SQL = """
SELECT index_tier, coalesce(completeness < ?, FALSE) AS is_poorly_documented, count(*) AS n
FROM marts.index_presentations
GROUP BY ALL
"""
# Only the cohort_summary rows the report shows: one outcome, two stratum types.
SUMMARY_SQL = """
SELECT * FROM marts.cohort_summary
WHERE outcome = ? AND stratum_type IN ('index_tier', 'pattern')
"""
# care_gaps is record-level too; the report shows its counts by kind of gap, in the
# mart's order.
CARE_GAP_COUNTS_SQL = """
SELECT care_gap, count(*) AS n, min(rowid) AS first_row
FROM marts.care_gaps GROUP BY care_gap ORDER BY first_row
"""


@dataclass
class ReportData:
    """The tables behind one report; None where the table does not exist."""

    warehouse: Path
    # marts.index_presentations is held as counts (index_tier, is_poorly_documented, n).
    marts: dict[str, pd.DataFrame | None]
    run: dict[str, Any] | None
    manifest: pd.DataFrame | None
    n_presentations: int | None
    missing: list[str] = field(default_factory=list)

    def mart(self, name: str) -> pd.DataFrame | None:
        """The mart as a frame, or None when it is absent or has no rows."""
        frame = self.marts.get(name)
        return None if frame is None or frame.empty else frame


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables"
    ).fetchall()
    return {name for (name,) in rows}


def read_table(con: duckdb.DuckDBPyConnection, tables: set[str], name: str) -> pd.DataFrame | None:
    """SELECT the table when it exists, else None."""
    if name not in tables:
        return None
    return con.execute(f"SELECT * FROM {name}").df()


def read_query(
    con: duckdb.DuckDBPyConnection, tables: set[str], name: str, sql: str, params: list
) -> pd.DataFrame | None:
    """The query's result when table `name` exists, else None."""
    if name not in tables:
        return None
    return con.execute(sql, params).df()


def read_run(
    con: duckdb.DuckDBPyConnection, tables: set[str], run_id: str | None
) -> dict[str, Any] | None:
    """The ops.run_log row of the given run, or of the latest run when none is given."""
    if "ops.run_log" not in tables:
        return None
    if run_id is not None:
        frame = con.execute("SELECT * FROM ops.run_log WHERE run_id = ?", [run_id]).df()
    else:
        frame = con.execute(
            "SELECT * FROM ops.run_log ORDER BY started_at DESC NULLS LAST, run_id DESC LIMIT 1"
        ).df()
    if frame.empty:
        return None
    row = frame.iloc[0].to_dict()
    details = row.get("details")
    if isinstance(details, str):
        try:
            row["details"] = json.loads(details)
        except json.JSONDecodeError:
            row["details"] = {}
    return row


def count_presentations(con: duckdb.DuckDBPyConnection, tables: set[str]) -> int | None:
    """All validated presentations: staging.intake, or its one-to-one features table."""
    for name in ("staging.intake", "features.presentation_flags"):
        if name in tables:
            n = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            if n:
                return int(n)
    return None


def load_report_data(warehouse: str | Path, run_id: str | None = None) -> ReportData:
    """Read everything the report shows, through one read-only connection."""
    warehouse = Path(warehouse)
    con = connect(warehouse, read_only=True)
    try:
        tables = existing_tables(con)
        marts = {name: read_table(con, tables, f"marts.{name}") for name in SMALL_MARTS}
        marts["index_presentations"] = read_query(
            con,
            tables,
            "marts.index_presentations",
            INDEX_TIER_COUNTS_SQL,
            [POORLY_DOCUMENTED_BELOW],
        )
        marts["cohort_summary"] = read_query(
            con, tables, "marts.cohort_summary", SUMMARY_SQL, [RATE_OUTCOME]
        )
        marts["care_gaps"] = read_query(con, tables, "marts.care_gaps", CARE_GAP_COUNTS_SQL, [])
        run = read_run(con, tables, run_id)
        manifest = read_table(con, tables, "ops.ingest_manifest")
        n_presentations = count_presentations(con, tables)
    finally:
        con.close()
    missing = [name for name, frame in marts.items() if frame is None or frame.empty]
    return ReportData(warehouse, marts, run, manifest, n_presentations, missing)
