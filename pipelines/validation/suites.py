"""Great Expectations suites built from the contracts in `schemas/*.yml`.

Each table has two suites, because Great Expectations' pandas engine costs time
per row *and* per expectation:

- `<table>.values` checks every constraint that depends on a value alone
  (required, castable type, allowed set, range, not after the load date) on a
  frame of the *distinct* values of each column. A column of 1,000,000 booleans
  has three distinct values, so the suite runs on a few thousand rows at most,
  and a failing value is mapped back to every row that holds it.
- `<table>.rows` checks the columns whose values are nearly all distinct (ids,
  codes: text without an allowed set) row by row; only `required` applies to them.

Uniqueness and references span chunks and files; the ingest stage checks them in
DuckDB under the same rule names.

Every expectation carries `meta = {"column": <contract column>, "rule": <rule>}`,
which is how a failure becomes a quarantine row.
"""

from __future__ import annotations

from datetime import date, datetime

import great_expectations as gx
import great_expectations.expectations as gxe

from pipelines.contracts import Column, Contract
from pipelines.validation import outcomes

# Spellings of a boolean in exports, compared in lower case; anything else is quarantined.
BOOLEAN_TRUE: tuple[str, ...] = ("true", "t", "yes", "y", "1")
BOOLEAN_FALSE: tuple[str, ...] = ("false", "f", "no", "n", "0")
INTEGER_PATTERN = r"^[+-]?\d{1,9}$"
DATE_FORMAT = "%Y-%m-%d"

# Helper columns of the values frame, derived from a contract column's text.
NUMBER_SUFFIX = "__number"
ISO_SUFFIX = "__iso"
DATE_SUFFIX = "__date"


def checked_by_value(column: Column) -> bool:
    """Whether the column is validated on its distinct values (not an id or free text)."""
    return not (column.type == "string" and column.allowed is None)


def _meta(column: Column, rule: str) -> dict[str, str]:
    return {"column": column.name, "rule": rule}


def column_expectations(column: Column, load_date: date) -> list[gxe.Expectation]:
    """The expectations one contract column implies, in the order a reader checks them."""
    name = column.name
    found: list[gxe.Expectation] = []
    if column.required:
        found.append(
            gxe.ExpectColumnValuesToNotBeNull(column=name, meta=_meta(column, outcomes.REQUIRED))
        )
    if column.type == "integer":
        found.append(
            gxe.ExpectColumnValuesToMatchRegex(
                column=name, regex=INTEGER_PATTERN, meta=_meta(column, outcomes.INTEGER)
            )
        )
    elif column.type == "boolean":
        found.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=name,
                value_set=[*BOOLEAN_TRUE, *BOOLEAN_FALSE],
                meta=_meta(column, outcomes.BOOLEAN),
            )
        )
    elif column.type == "date":
        # A valid ISO date reads back as itself; 2024-02-30 or 2024-2-3 do not.
        found.append(
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A=name,
                column_B=name + ISO_SUFFIX,
                ignore_row_if="both_values_are_missing",
                meta=_meta(column, outcomes.DATE),
            )
        )
        if column.not_after_load_date:
            found.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=name + DATE_SUFFIX,
                    max_value=datetime.combine(load_date, datetime.min.time()),
                    meta=_meta(column, outcomes.NOT_AFTER_LOAD_DATE),
                )
            )
    if column.allowed is not None:
        found.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=name, value_set=list(column.allowed), meta=_meta(column, outcomes.ALLOWED)
            )
        )
    if column.min is not None or column.max is not None:
        found.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=name + NUMBER_SUFFIX,
                min_value=column.min,
                max_value=column.max,
                meta=_meta(column, outcomes.RANGE),
            )
        )
    return found


def values_suite(contract: Contract, load_date: date) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name=f"{contract.table}.values")
    for column in contract.columns:
        if checked_by_value(column):
            for expectation in column_expectations(column, load_date):
                suite.add_expectation(expectation)
    return suite


def rows_suite(contract: Contract, load_date: date) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name=f"{contract.table}.rows")
    for column in contract.columns:
        if not checked_by_value(column):
            for expectation in column_expectations(column, load_date):
                suite.add_expectation(expectation)
    return suite


def rows_columns(contract: Contract) -> list[str]:
    """Columns of the rows frame: ids and codes that the rows suite checks."""
    return [c.name for c in contract.columns if not checked_by_value(c) and c.required]
