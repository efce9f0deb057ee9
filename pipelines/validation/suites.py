"""Great Expectations suites built from the contracts in `schemas/*.yml`.

One suite per table, one expectation per contract constraint: required, castable
type, allowed set, range, a plausible date, not after the load date. Every one of them depends on a
single value only, so the suite runs on a frame of the file's *distinct* values
(see `checkpoint.py`), never on a million rows: Great Expectations' pandas engine
costs time per row and per expectation, and a column of a million booleans has
three distinct values. Uniqueness and references span chunks and files; the ingest
stage checks them in DuckDB under the same rule names.

Every expectation carries `meta = {"column": <contract column>, "rule": <rule>}`,
which is how a failure becomes a quarantine row.
"""

from __future__ import annotations

from datetime import date, datetime

import great_expectations as gx
import great_expectations.expectations as gxe

from pipelines.config import DEFAULT_DATE_MIN, DEFAULT_FUTURE_DATES
from pipelines.contracts import Column, Contract
from pipelines.validation import outcomes

# Spellings of a boolean in exports, compared in lower case; anything else is quarantined.
BOOLEAN_TRUE: tuple[str, ...] = ("true", "t", "yes", "y", "1")
BOOLEAN_FALSE: tuple[str, ...] = ("false", "f", "no", "n", "0")
# ASCII digits only: Python's \d also takes other scripts' digits (full-width ５４),
# which DuckDB's cast into staging does not.
INTEGER_PATTERN = r"^[+-]?[0-9]{1,9}$"
DATE_FORMAT = "%Y-%m-%d"

# Helper columns of the values frame, derived from a contract column's text.
NUMBER_SUFFIX = "__number"
ISO_SUFFIX = "__iso"
DATE_SUFFIX = "__date"


def checked_by_value(column: Column) -> bool:
    """Whether the suite tells the column's values apart, beyond NULL or not.

    Text without an allowed set (ids, codes, free text) is only ever `required`, so
    one non-NULL example and NULL stand for all its values.
    """
    return not (column.type == "string" and column.allowed is None)


def _meta(column: Column, rule: str) -> dict[str, str]:
    return {"column": column.name, "rule": rule}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def date_range_bounds(
    column: Column,
    load_date: date,
    date_min: date,
    date_max: date | None,
    future_dates: str = DEFAULT_FUTURE_DATES,
) -> tuple[date, date | None]:
    """The plausible dates of a date column: from `date_min` to `date_max` (the load date
    when not set).

    A column marked `not_after_load_date` has its own rule for what lies after the load
    date, so each value breaks one rule: its range ends at `date_max` only when that is
    earlier than the load date. With `future_dates = "accept"` (a source whose dates are
    shifted on purpose) the load date bounds no column: only `date_max`, when set.
    """
    if future_dates == "accept":
        return date_min, date_max
    if not column.not_after_load_date:
        return date_min, date_max or load_date
    return date_min, date_max if date_max is not None and date_max < load_date else None


def column_expectations(
    column: Column,
    load_date: date,
    date_min: date = DEFAULT_DATE_MIN,
    date_max: date | None = None,
    future_dates: str = DEFAULT_FUTURE_DATES,
) -> list[gxe.Expectation]:
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
        low, high = date_range_bounds(column, load_date, date_min, date_max, future_dates)
        found.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=name + DATE_SUFFIX,
                min_value=_midnight(low),
                max_value=_midnight(high) if high is not None else None,
                meta=_meta(column, outcomes.DATE_RANGE),
            )
        )
        if column.not_after_load_date and future_dates != "accept":
            found.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=name + DATE_SUFFIX,
                    max_value=_midnight(load_date),
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


def table_suite(
    contract: Contract,
    load_date: date,
    date_min: date = DEFAULT_DATE_MIN,
    date_max: date | None = None,
    future_dates: str = DEFAULT_FUTURE_DATES,
) -> gx.ExpectationSuite:
    """The suite of one table: every column's expectations, in contract order.

    Given to the suite whole, not added one by one: `add_expectation` on a suite that
    belongs to no context yet looks its name up in GX's current context (the newest of
    the process) and, finding a suite of that name there, adds the expectation to that
    other context's stored suite as well.
    """
    return gx.ExpectationSuite(
        name=contract.table,
        expectations=[
            expectation
            for column in contract.columns
            for expectation in column_expectations(
                column, load_date, date_min, date_max, future_dates
            )
        ],
    )
