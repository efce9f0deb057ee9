"""Canonical input files: `intake*`, `referrals*`, `diagnoses*` in one directory."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.contracts import TABLES, load_contract
from pipelines.errors import UserError

SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet", ".jsonl", ".jsonl.gz", ".ndjson")


def file_kind(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return {"csv.gz": "csv", "jsonl.gz": "jsonl", "ndjson": "jsonl"}.get(
                suffix.lstrip("."), suffix.lstrip(".")
            )
    return None


def discover(input_dir: str | Path) -> dict[str, list[Path]]:
    """Input files by table, matched by name prefix (`intake*` -> intake), sorted by name."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise UserError(
            f"{input_dir}: not a directory; pass --input DIR with the canonical files", exit_code=2
        )
    found: dict[str, list[Path]] = {t: [] for t in TABLES}
    for path in sorted(input_dir.iterdir()):
        if not path.is_file() or file_kind(path) is None:
            continue
        for table in TABLES:
            if path.name.lower().startswith(load_contract(table).file_prefix):
                found[table].append(path)
                break
    return found


def read_as_text_sql(path: Path) -> str:
    """A DuckDB relation over the file with every contract column as text (missing ones NULL)."""
    kind = file_kind(path)
    quoted = str(path).replace("'", "''")
    if kind == "csv":
        return f"read_csv('{quoted}', header = true, all_varchar = true)"
    if kind == "parquet":
        return f"read_parquet('{quoted}')"
    if kind == "jsonl":
        return f"read_json('{quoted}', format = 'newline_delimited')"
    raise UserError(f"{path}: unsupported file kind")


def raw_select_sql(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> str:
    """SELECT of the contract's columns as text (missing optional ones NULL), then the lineage
    source_file and source_row (line number in the file: the header is line 1)."""
    contract = load_contract(table)
    relation = read_as_text_sql(path)
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    missing = [c for c in contract.required_names if c not in present]
    if missing:
        raise UserError(f"{path}: missing required column(s) {', '.join(missing)} of {table}")
    select = ", ".join(
        f"CAST({name} AS VARCHAR) AS {name}" if name in present else f"NULL::VARCHAR AS {name}"
        for name in contract.names
    )
    quoted = str(path).replace("'", "''")
    return (
        f"SELECT {select}, '{quoted}' AS source_file, row_number() OVER () + 1 AS source_row "
        f"FROM {relation}"
    )


def load_raw_file(con: duckdb.DuckDBPyConnection, table: str, path: Path, run_id: str) -> int:
    """Append one file to raw.<table> as text, with its lineage; returns the rows loaded."""
    before = con.execute(f"SELECT count(*) FROM raw.{table}").fetchone()[0]
    select = raw_select_sql(con, table, path)
    con.execute(f"INSERT INTO raw.{table} SELECT *, ? FROM ({select})", [run_id])
    return con.execute(f"SELECT count(*) FROM raw.{table}").fetchone()[0] - before
