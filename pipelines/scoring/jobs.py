"""Scoring jobs: a canonical intake file to a scored file, or staging to features.

Both jobs load the intake into DuckDB first (typed per schemas/intake.yml); the
DuckDB engine then runs the rendered SQL in place, the pandas engine fetches the
typed table as a frame. Once the file is loaded the connection reads and writes no
file: the output is streamed out of DuckDB as Arrow batches and written by pyarrow
in both cases, so a CSV has true/false booleans and empty NULLs whichever engine
scored it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.config import DEFAULT_MEMORY_LIMIT
from pipelines.contracts import Column, load_contract
from pipelines.errors import UserError
from pipelines.outputs import csv_safe_select
from pipelines.scoring.duckdb_engine import SOURCE, TABLE_ROW_KEY
from pipelines.scoring.engines import DEFAULT_ENGINE, scored_select
from pipelines.scoring.history import DIAGNOSES
from pipelines.scoring.output import TABLE, table_ddl
from pipelines.scoring.rules import RuleSet, load_rules
from pipelines.sqltext import identifier, literal
from pipelines.sqltext import path as sql_path
from pipelines.validation.identifiers import capped_sql
from pipelines.warehouse import create_ops_tables, refuse_file_access

# Rows per Arrow batch of the output: a Parquet row group each.
OUTPUT_BATCH_ROWS = 122_880


def file_format(path: Path, role: str) -> str:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    raise UserError(
        f"{path}: the {role} must end in .csv or .parquet (the extension picks the format)",
        exit_code=2,
    )


def load_intake_file(
    con: duckdb.DuckDBPyConnection, path: Path, diagnoses: Path | None = None
) -> tuple[int, str]:
    """Load a canonical intake file into the table staging.intake (and a diagnoses file,
    when given, into staging.diagnoses), then shut file access.

    Bad values stop with file/row/column. Once the rows are in the tables, the
    connection can read or write no file (`enable_external_access = false`, which
    cannot be turned back on): nothing the input holds can make later SQL on it read
    `/etc/passwd` or write anywhere. Returns the row count and the expression that
    keys the table's rows.
    """
    _load_file(con, path, "intake", SOURCE)
    if diagnoses is not None:
        _load_file(con, diagnoses, "diagnoses", DIAGNOSES, check_allowed=True)
    refuse_file_access(con)
    return con.execute(f"SELECT count(*) FROM {SOURCE}").fetchall()[0][0], TABLE_ROW_KEY


def _load_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    contract_name: str,
    table: str,
    check_allowed: bool = False,
) -> None:
    """One canonical file into `table`, typed per its contract; the first bad value stops
    with its line and column (with `check_allowed`, a value outside `allowed` is bad too)."""
    kind = file_format(path, f"{contract_name} file")
    if not path.is_file():
        raise UserError(
            f"{path}: no such file; pass a canonical {contract_name} CSV or Parquet file",
            exit_code=2,
        )
    contract = load_contract(contract_name)
    reader = (
        f"read_csv({sql_path(path)}, header = true, all_varchar = true)"
        if kind == "csv"
        else f"read_parquet({sql_path(path)})"
    )
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW input_file AS SELECT * FROM {reader}")
        described = con.execute("DESCRIBE input_file").fetchall()
        present = {r[0]: r[1] for r in described}
    except duckdb.Error as exc:
        raise UserError(f"{path}: cannot read the file ({str(exc).splitlines()[0]})") from exc
    missing = [c for c in contract.required_names if c not in present]
    if missing:
        raise UserError(
            f"{path}: missing required column(s) {', '.join(missing)} of {contract_name}"
        )
    # The values each column can get wrong: a typed column (Parquet) holds no value
    # of the wrong type, but a required one can still be NULL.
    named, bads = [], []
    for c in contract.columns:
        allowed = c.allowed if check_allowed else None
        if c.name not in present or (
            present[c.name] == c.duckdb_type and not c.required and not allowed
        ):
            continue
        text = _text(c)
        bad = f"({c.name} IS NOT NULL AND TRY_CAST({text} AS {c.duckdb_type}) IS NULL)"
        if allowed:
            values = ", ".join(literal(v) for v in allowed)
            bad += f" OR ({c.name} IS NOT NULL AND {text} NOT IN ({values}))"
        if c.required:
            bad += f" OR {c.name} IS NULL"
        named.append(c)
        bads.append(bad)
    # Whether any value is bad, on every thread; only then is the file read again
    # with line numbers (row_number() OVER () holds a scan to one thread).
    if bads:
        any_bad = ", ".join(f"bool_or({bad})" for bad in bads)
        if any(con.execute(f"SELECT {any_bad} FROM input_file").fetchone()):
            _stop_at_first_bad_value(con, path, named, bads)
    select = ", ".join(_typed(c, present.get(c.name)) for c in contract.columns)
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    # A table of the in-memory database (it spills to the temporary directory like
    # any other): the file is read here, once, in its order, and never again.
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT {select} FROM input_file")
    con.execute("DROP VIEW input_file")


def _stop_at_first_bad_value(
    con: duckdb.DuckDBPyConnection, path: Path, columns: list[Column], bads: list[str]
) -> None:
    """Raise for the first bad value in the file: its line, column and value.

    One pass finds the first bad line of every column (line 1 is the header).
    """
    checks = []
    for c, bad in zip(columns, bads, strict=True):
        text = f"CAST({identifier(c.name)} AS VARCHAR)"
        checks.append(f"arg_min_null({text}, CASE WHEN {bad} THEN file_line END)")
        checks.append(f"min(CASE WHEN {bad} THEN file_line END)")
    numbered = "SELECT row_number() OVER () + 1 AS file_line, * FROM input_file"
    found = con.execute(f"SELECT {', '.join(checks)} FROM ({numbered})").fetchone()
    problems = [
        (found[2 * i + 1], c, found[2 * i]) for i, c in enumerate(columns) if found[2 * i + 1]
    ]
    line, column, value = min(problems, key=lambda x: x[0])
    where = f"{path}, line {line}, column {column.name}"
    if value is None:
        raise UserError(f"{where}: a value is required; fill it in or drop the row")
    if column.allowed and (value is None or value not in column.allowed):
        raise UserError(
            f"{where}: {value!r} is not one of {', '.join(column.allowed)}; "
            "correct the value and rerun"
        )
    raise UserError(f"{where}: {value!r} is not a valid {column.type}; correct the value and rerun")


def _text(column: Column) -> str:
    """A column of the file as text, capped (an age above 90 in any numeric form is 90)."""
    text = f"CAST({identifier(column.name)} AS VARCHAR)"
    return capped_sql(column, text) if column.cap is not None else text


def _typed(column: Column, file_type: str | None) -> str:
    """A column of the file as its contract type (NULL when the file lacks it)."""
    name = identifier(column.name)
    if file_type is None:
        return f"CAST(NULL AS {column.duckdb_type}) AS {name}"
    if file_type == column.duckdb_type and column.cap is None:
        return name
    return f"CAST({_text(column)} AS {column.duckdb_type}) AS {name}"


def score_file(
    input_path: Path,
    output_path: Path,
    engine: str = DEFAULT_ENGINE,
    rules: RuleSet | None = None,
    progress: Callable[[str], None] = lambda _: None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    diagnoses: Path | None = None,
) -> int:
    """Score a canonical intake file into OUTPUT (format by extension); returns rows.

    With `diagnoses` (a canonical diagnoses file), known_cancer also reads it."""
    out_kind = file_format(output_path, "output")
    rules = rules or load_rules()
    # DuckDB's default limit is 80% of RAM: on a shared machine a 10M-row score
    # took 12 GB; capped, it spills its sorts to disk instead.
    con = duckdb.connect(config={"memory_limit": memory_limit})
    try:
        progress(f"reading {input_path}")
        n, row_key = load_intake_file(con, input_path, diagnoses)
        progress(f"scoring {n:,} presentations with the {engine} engine")
        select = scored_select(con, engine, rules, row_key, diagnoses is not None)
        if out_kind == "csv":
            select = csv_safe_select(con, select)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        write_select(con, select, output_path, out_kind)
        progress(f"wrote {output_path}")
        return n
    finally:
        con.close()


def write_select(con: duckdb.DuckDBPyConnection, select: str, path: Path, kind: str) -> None:
    """The rows of `select` into a CSV (header, true/false, empty NULLs) or Parquet file.

    Written by pyarrow from Arrow batches: the connection has no file access.
    """
    import pyarrow.csv as pv
    import pyarrow.parquet as pq

    with con.sql(select).to_arrow_reader(batch_size=OUTPUT_BATCH_ROWS) as batches:
        if kind == "csv":
            # Text values are quoted (a comma or quote in an id stays in its cell);
            # the column names are the rules' own and need none.
            options = pv.WriteOptions(quoting_style="needed", quoting_header="none")
            writer = pv.CSVWriter(path, batches.schema, write_options=options)
        else:
            writer = pq.ParquetWriter(path, batches.schema)
        with writer:
            for batch in batches:
                writer.write_batch(batch)


def record_rules_version(con: duckdb.DuckDBPyConnection, rules: RuleSet) -> None:
    create_ops_tables(con)
    con.execute(
        "INSERT INTO ops.rules_versions VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [
            rules.version,
            str(rules.path),
            rules.path.read_text(encoding="utf-8"),
            datetime.now(UTC).replace(tzinfo=None),
        ],
    )


def score_warehouse(
    con: duckdb.DuckDBPyConnection, engine: str = DEFAULT_ENGINE, rules: RuleSet | None = None
) -> int:
    """staging.intake -> features.presentation_flags (replaced whole, in one transaction).

    The history reads staging.diagnoses too when the warehouse has that table."""
    rules = rules or load_rules()
    has_diagnoses = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'staging' AND table_name = 'diagnoses'"
    ).fetchall()[0][0]
    select = scored_select(con, engine, rules, diagnoses=bool(has_diagnoses))
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(table_ddl(rules, TABLE))
        con.execute(f"INSERT INTO {TABLE} {select}")
        record_rules_version(con, rules)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
