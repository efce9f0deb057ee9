"""What `redflags query` prints and writes: DuckDB's own table rendering and writers.

The analyst's SQL runs on the read-only connection that cannot touch a file. Its result
leaves that connection as a stream of Arrow batches, with DuckDB's types kept (with
`arrow_lossless_conversion`, even UUID, BIT, TIME WITH TIME ZONE and HUGEINT come back
as themselves), and a second, in-memory DuckDB renders it or writes it. No value passes
through Python: a NULL is NULL in the table, empty in CSV and null in JSON, a date is
`2023-02-14`, a list is a list, a DECIMAL keeps every digit (a number in JSON), and a
year Python's datetime cannot hold (0, 10000) prints as DuckDB prints it.

The writing connection runs only the SQL written here, and may only write into a
temporary folder of its own; the finished file then replaces `--out` by rename, so an
interrupted query never leaves half a result.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pipelines.errors import UserError
from pipelines.outputs import csv_safe_select
from pipelines.sqltext import literal

if TYPE_CHECKING:
    import duckdb

# The formats, and the options of DuckDB's COPY that write each file (table: the box).
COPY_OPTIONS: dict[str, str] = {
    "csv": "FORMAT csv, HEADER true",
    "tsv": "FORMAT csv, HEADER true, DELIMITER '\t'",
    "json": "FORMAT json, ARRAY true",
    "parquet": "FORMAT parquet, COMPRESSION zstd",
}
FORMATS: tuple[str, ...] = ("table", *COPY_OPTIONS)
# `--out`'s extension names the format when --format is not given.
EXTENSIONS: dict[str, str] = {
    ".txt": "table",
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".parquet": "parquet",
}
# The most rows a table shows; the rest are counted, not shown. DuckDB's Python client
# renders at most 10,000 rows, and at 10,000 cannot tell whether more follow ("? rows").
TABLE_ROWS = 9_999
# Rows per Arrow batch between the two connections: memory stays bounded by a batch.
BATCH_ROWS = 65_536
# The box's width and a column's width when nothing is to be cut (not a terminal).
UNLIMITED_WIDTH = 1_000_000


def output_format(given: str | None, out: Path | None) -> str:
    """--format when given, else the format `--out`'s extension names, else the table."""
    if given is not None:
        return given
    if out is None:
        return "table"
    fmt = EXTENSIONS.get(out.suffix.lower())
    if fmt is None:
        ending = f"the extension {out.suffix}" if out.suffix else "a name without an extension"
        raise UserError(
            f"--out {out}: cannot tell the format from {ending}; end the name with one of "
            f"{', '.join(EXTENSIONS)}, or give --format {'|'.join(FORMATS)}",
            exit_code=2,
        )
    return fmt


def check_output(fmt: str, out: Path | None) -> None:
    """Refuse what cannot be written, before the query runs."""
    if fmt == "parquet" and out is None:
        raise UserError("--format parquet writes a file: add --out FILE", exit_code=2)
    if out is not None and not out.parent.is_dir():
        raise UserError(f"--out {out}: no such directory {out.parent}", exit_code=2)
    if out is not None and out.is_dir():
        raise UserError(f"--out {out}: is a directory; name a file", exit_code=2)


def write_result(
    con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation, fmt: str, out: Path | None
) -> int | None:
    """Print the result of `relation` (a query on `con`) or write it to `out` as `fmt`.

    Returns the number of rows of a table, None for the other formats (not counted).
    """
    con.execute("SET arrow_lossless_conversion = true")
    batches = relation.to_arrow_reader(BATCH_ROWS)
    if fmt == "table" and out is None:
        with writer_connection(None) as writer:
            return render_table(writer, batches, sys.stdout)
    folder = Path(tempfile.mkdtemp(prefix=".redflags-query-", dir=out.parent if out else None))
    try:
        written = folder / f"result.{fmt}"
        rows = None
        with writer_connection(folder) as writer:
            if fmt == "table":
                with written.open("w", encoding="utf-8") as fh:
                    rows = render_table(writer, batches, fh)
            else:
                copy_result(writer, batches, fmt, written)
        if out is not None:
            os.replace(written, out)
        else:
            with written.open("rb") as fh:
                sys.stdout.flush()
                shutil.copyfileobj(fh, sys.stdout.buffer)
                sys.stdout.buffer.flush()
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def writer_connection(folder: Path | None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that may write into `folder` and nowhere else (None: nowhere).

    Used as a context manager, which closes it.
    """
    import duckdb

    writer = duckdb.connect()
    if folder is not None:
        writer.execute("SET allowed_directories = ?", [[str(folder)]])
    writer.execute("SET enable_external_access = false")
    return writer


def copy_result(writer: duckdb.DuckDBPyConnection, batches: Any, fmt: str, path: Path) -> None:
    """DuckDB's writer of `fmt` (COPY ... TO): CSV and TSV with no spreadsheet formula."""
    writer.register("result", batches)
    select = "SELECT * FROM result"
    if fmt in ("csv", "tsv"):
        select = csv_safe_select(writer, select)
    writer.execute(f"COPY ({select}) TO {literal(str(path))} ({COPY_OPTIONS[fmt]})")


def render_table(writer: duckdb.DuckDBPyConnection, batches: Any, target: IO[str]) -> int:
    """DuckDB's box of the result, printed to `target`; returns the result's rows.

    On a terminal DuckDB fits the box to the screen (its footer says how many rows and
    columns it shows). Elsewhere every column and value is whole and every row is
    shown, up to TABLE_ROWS; the rest are counted, for the caller to report.
    """
    import pyarrow as pa

    kept, total = [], 0
    for batch in batches:
        if total < TABLE_ROWS:
            kept.append(batch.slice(0, TABLE_ROWS - total))
        total += batch.num_rows
    relation = writer.from_arrow(pa.Table.from_batches(kept, schema=batches.schema))
    with contextlib.redirect_stdout(target):  # DuckDB prints the box with Python's print
        if target.isatty():
            relation.show()
        else:
            relation.show(
                max_rows=TABLE_ROWS, max_width=UNLIMITED_WIDTH, max_col_width=UNLIMITED_WIDTH
            )
    return total
