"""What the report reads from the warehouse's published copy (pipelines/published.py):
the release, ops.* and the run it came from.

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

from pipelines.disclosure import release
from pipelines.published import PUBLICATION, connect_for_analysts

# The report shows the release's tables (pipelines/disclosure/release.py): the same
# counts as the export, suppressed and audited together with it.
REPORTED = release.RELEASE_TABLES


@dataclass
class ReportData:
    """The tables behind one report; None where the table does not exist."""

    warehouse: Path
    # the release's tables: hidden counts are NULL and their rows flagged `suppressed`
    marts: dict[str, pd.DataFrame | None]
    min_cell: int | None
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
    """All validated presentations, as counted in the warehouse when the copy was made."""
    if PUBLICATION not in tables:
        return None
    rows = con.execute(f"SELECT n_presentations FROM {PUBLICATION}").fetchall()
    return int(rows[0][0]) if rows and rows[0][0] else None


def load_report_data(warehouse: str | Path, run_id: str | None = None) -> ReportData:
    """Read everything the report shows, through one read-only connection to the
    published copy: one publication, whatever a run does meanwhile."""
    warehouse = Path(warehouse)
    con = connect_for_analysts(warehouse)
    try:
        tables = existing_tables(con)
        marts: dict[str, pd.DataFrame | None] = dict.fromkeys(REPORTED)
        min_cell = None
        if f"{release.SCHEMA}.{release.AUDIT}" in tables:
            published = release.read_release(con)
            marts |= {name: published.tables.get(name) for name in REPORTED}
            min_cell = published.min_cell
        run = read_run(con, tables, run_id)
        manifest = read_table(con, tables, "ops.ingest_manifest")
        n_presentations = count_presentations(con, tables)
    finally:
        con.close()
    missing = [name for name, frame in marts.items() if frame is None or frame.empty]
    return ReportData(warehouse, marts, min_cell, run, manifest, n_presentations, missing)
