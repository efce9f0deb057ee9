"""What leaves the pipeline as a spreadsheet can open it: no cell is a formula.

A text cell that starts with `=`, `+`, `-` or `@` (or a tab, a carriage return or a
line feed before one) is run as a formula by Excel and LibreOffice when the CSV is
opened: `=cmd|' /C calc'!A0` starts a program, `=HYPERLINK(...)` sends data away
(OWASP, "CSV Injection"). Every CSV, extract and report writes its text through
this module, which prefixes such a cell with a single quote: the spreadsheet then
shows the text as it was and runs nothing.

Numbers are left alone: a numeric column is never touched, and a text cell that is
a plain number (`-12`, `+3.5`, `1e-3`) is not a formula either, so it keeps its sign.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.sqltext import identifier, literal

if TYPE_CHECKING:
    import duckdb

# The first characters that make a spreadsheet read a cell as a formula (with the
# full-width forms, which some spreadsheets take for the ASCII ones).
FORMULA_START = r"^[=+\-@\t\r\n＝＋－＠]"
# A plain number written as text: a spreadsheet reads it as that number, not a formula.
NUMBER_TEXT = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
# What a formula cell is prefixed with: the spreadsheets' own mark for "this is text".
QUOTE = "'"
_FORMULA, _NUMBER = re.compile(FORMULA_START), re.compile(NUMBER_TEXT)


def is_formula(text: str) -> bool:
    """Whether a spreadsheet would run `text` as a formula."""
    return _FORMULA.match(text) is not None and _NUMBER.fullmatch(text) is None


def csv_safe_text(text: str) -> str:
    """One text value as it may be written to a CSV: a formula becomes quoted text."""
    return QUOTE + text if is_formula(text) else text


def csv_safe_sql(expression: str) -> str:
    """A SQL expression of type VARCHAR, with a formula value quoted (DuckDB)."""
    return (
        f"CASE WHEN regexp_matches({expression}, {literal(FORMULA_START)}) "
        f"AND NOT regexp_matches({expression}, {literal(NUMBER_TEXT)}) "
        f"THEN {literal(QUOTE)} || {expression} ELSE {expression} END"
    )


def csv_safe_select(con: duckdb.DuckDBPyConnection, select: str) -> str:
    """`select` wrapped so that its text columns and column names hold no formula.

    For `COPY (...) TO 'file.csv'`: the columns keep their order, names and types
    (a formula name is quoted like a value); only VARCHAR columns are rewritten.
    """
    described = con.execute(f"DESCRIBE {select}").fetchall()
    columns = []
    for name, sql_type, *_ in described:
        quoted = identifier(name)
        value = csv_safe_sql(quoted) if sql_type == "VARCHAR" else quoted
        columns.append(f"{value} AS {identifier(csv_safe_text(name))}")
    return f"SELECT {', '.join(columns)} FROM ({select})"


def write_text_atomically(path: Path, text: str) -> Path:
    """Write a text file whole or not at all: a temporary file beside it, then a rename,
    so a reader (a browser on the report, the validation index) never sees half of it.

    Opened with the user's umask (not mkstemp's 0600), so the file can be shared.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
