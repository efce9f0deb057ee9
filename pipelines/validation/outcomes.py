"""What validation can decide about a file or a row, named once for every layer.

Rule names are what a user reads in `quarantine.<table>.rule` and in the
`redflags validate` table, so they say what was expected of the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Row-level rules found while reading a file (before any value is looked at).
RAGGED_ROW = "field_count"  # the line has more or fewer fields than the header
UNBALANCED_QUOTES = "balanced_quotes"  # a quote opened on the line is never closed
MAX_LENGTH = "max_length"  # a line or value longer than the readers take
SCALAR = "scalar"  # a list or an object where one value belongs (JSON Lines, Parquet)
JSON_OBJECT = "json_object"  # a JSON Lines line that is not one JSON object
UNIQUE_KEYS = "unique_keys"  # a JSON object naming a column twice (keys compared in lower case)

# Row-level rules of the identifier guard, applied before anything is stored.
IDENTIFIER = "identifier"  # a value holds an identifier; it is stored redacted
FORMULA = "formula"  # an id or code a spreadsheet would run as a formula

# Row-level rules of the Great Expectations suites (one per contract constraint).
REQUIRED = "required"
INTEGER = "integer"
BOOLEAN = "boolean"
DATE = "date"
ALLOWED = "allowed"
RANGE = "range"
DATE_RANGE = "date_range"  # before date_min or after date_max (settings)
NOT_AFTER_LOAD_DATE = "not_after_load_date"

# Row-level rules that span chunks and files, checked in DuckDB.
UNIQUE = "unique"


def known_in(reference: str) -> str:
    """The rule of a `references: intake.patient_id` column: the value is known in intake."""
    return f"known_in_{reference.split('.')[0]}"


class FileRejected(Exception):
    """A file that breaks a table-level rule: nothing of it is stored.

    The message names the file, says what is wrong and what to do; `reason` is a
    short tag for the manifest and the summary table.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Checked:
    """One expectation of a table's suite as Great Expectations evaluated it on a file.

    Plain data, so that a prepare on a Dask worker hands it back with the file's report
    and the validation pages can name what GX checked. GX evaluates the file's distinct
    values, so `success` is GX's verdict and no count of GX's is kept: the rows that
    broke the rule are counted in the quarantine.
    """

    column: str
    rule: str
    expectation: str  # GX's expectation type, such as expect_column_values_to_be_in_set
    kwargs: dict[str, Any]  # its arguments as JSON values (dates in ISO), without batch_id
    success: bool
