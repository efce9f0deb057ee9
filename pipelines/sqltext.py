"""SQL text built from values: the one place that quotes them.

Everything that puts a value into SQL text (a file name, a column name read from an
input file, a phrase of the rules, a setting) goes through these, or is passed as a
parameter. DuckDB takes no parameters for identifiers, COPY targets or views, so
those are quoted here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def literal(text: str) -> str:
    """A SQL string literal: `it's` -> `'it''s'`."""
    return "'" + str(text).replace("'", "''") + "'"


def identifier(name: str) -> str:
    """A quoted SQL identifier: any text, even `a" OR 1=1`, names one column."""
    return '"' + str(name).replace('"', '""') + '"'


def path(file: str | Path) -> str:
    """A file's path as a SQL string literal (for read_csv, COPY ... TO, ATTACH)."""
    return literal(str(file))


def path_list(files: Iterable[str | Path]) -> str:
    """Several paths as a SQL list of string literals (read_json([...]))."""
    return "[" + ", ".join(path(f) for f in files) + "]"
