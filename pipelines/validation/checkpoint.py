"""Run a table's suite as a Great Expectations Checkpoint over a file's distinct values.

While a file is read chunk by chunk, `DistinctValues` keeps what the suite needs to
see: the distinct values of each column it tells apart (booleans, enums, numbers,
dates) and, for ids and free text, one example and NULL. After the last chunk the
Checkpoint validates that small frame once; `result_format` COMPLETE returns the
index of every failing frame row, which names the failing values. The ingest stage
then quarantines every row of the file holding one of them (in DuckDB), so a
failure is found for all rows at once and GX never sees a million rows.

GX's own counts describe that frame, not the file, so none of them is published: the
validation pages (`docs.py`) take from GX which expectations were evaluated and which
failed (`Checked`), and count the rows that broke each rule in the quarantine.

One ephemeral GX context per process holds a pandas data source and one Checkpoint per
table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config import DEFAULT_DATE_MIN, DEFAULT_FUTURE_DATES
from pipelines.contracts import Contract
from pipelines.validation import suites
from pipelines.validation.outcomes import Checked
from pipelines.validation.suites import (
    DATE_FORMAT,
    DATE_SUFFIX,
    ISO_SUFFIX,
    NUMBER_SUFFIX,
    checked_by_value,
)

RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False}


@dataclass
class Failure:
    """One failed expectation: the column, the rule, and the values that broke it."""

    column: str
    rule: str
    values: pa.Array  # may hold NULL (a `required` failure)


@dataclass
class SuiteResult:
    """A file's validation: every expectation GX evaluated, and the failing values."""

    checked: list[Checked]
    failures: list[Failure]


def _first_value(values: pa.ChunkedArray) -> pa.Array:
    """The first non-NULL value (none if all are NULL), found without copying the rest."""
    if values.null_count == len(values):
        return pa.array([], values.type)
    first = pc.index(values.is_valid(), True).as_py()
    return values.slice(first, 1).combine_chunks()


class DistinctValues:
    """What a table's suite must see of a file, gathered chunk by chunk in bounded memory."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self._seen: dict[str, pa.Array] = {}

    def add(self, rows: pa.Table) -> None:
        for column in self.contract.columns:
            if column.name not in rows.column_names:
                continue
            values = rows[column.name]
            if checked_by_value(column):
                new = pc.unique(values)
            else:
                has_null = values.null_count > 0
                new = pa.concat_arrays(
                    [_first_value(values), pa.nulls(1 if has_null else 0, pa.string())]
                )
            old = self._seen.get(column.name)
            self._seen[column.name] = (
                pc.unique(pa.concat_arrays([old, new])) if old is not None else new
            )
            if not checked_by_value(column):
                kept = pc.drop_null(self._seen[column.name]).slice(0, 1)
                nulls = self._seen[column.name].null_count
                self._seen[column.name] = pa.concat_arrays(
                    [kept, pa.nulls(min(nulls, 1), pa.string())]
                )

    def values(self) -> dict[str, pa.Array]:
        """Distinct values per contract column; a column absent from the file is all NULL."""
        return {
            c.name: self._seen.get(c.name, pa.nulls(1, pa.string())) for c in self.contract.columns
        }

    @property
    def empty(self) -> bool:
        return not self._seen or all(len(v) == 0 for v in self._seen.values())


def quiet_gx_logging() -> None:
    """GX reports through our summary, not through its own log lines.

    Raising the package's logger is not enough: some GX modules set their own logger to
    INFO when imported (one announces the temporary directory of the ephemeral docs
    site), so every GX logger with a level of its own is raised as well.
    """
    loggers = logging.root.manager.loggerDict
    names = [n for n in loggers if n == "great_expectations" or n.startswith("great_expectations.")]
    for name in names:
        if isinstance(loggers[name], logging.Logger) and (
            name == "great_expectations" or loggers[name].level != logging.NOTSET
        ):
            loggers[name].setLevel(logging.ERROR)


class Validator:
    """The GX context of one run: one suite and one Checkpoint per table, built once."""

    def __init__(
        self,
        load_date: date,
        date_min: date = DEFAULT_DATE_MIN,
        date_max: date | None = None,
        future_dates: str = DEFAULT_FUTURE_DATES,
    ) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        quiet_gx_logging()
        self.gx = gx
        self.load_date = load_date
        self.date_min, self.date_max = date_min, date_max
        self.future_dates = future_dates
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        self.source = self.context.data_sources.add_pandas("redflags")
        self._checkpoints: dict[str, object] = {}

    def checkpoint(self, contract: Contract):
        """The Checkpoint of one table: validate a whole dataframe, nothing else."""
        if contract.table in self._checkpoints:
            return self._checkpoints[contract.table]
        gx = self.gx
        asset = self.source.add_dataframe_asset(contract.table)
        batch = asset.add_batch_definition_whole_dataframe(contract.table)
        suite = self.context.suites.add(
            suites.table_suite(
                contract, self.load_date, self.date_min, self.date_max, self.future_dates
            )
        )
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=contract.table, data=batch, suite=suite)
        )
        # No actions: GX's Data Docs would show the counts of the distinct-values frame.
        checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(
                name=contract.table,
                validation_definitions=[definition],
                actions=[],
                result_format=RESULT_FORMAT,
            )
        )
        self._checkpoints[contract.table] = checkpoint
        return checkpoint

    def validate(self, contract: Contract, distinct: DistinctValues) -> SuiteResult:
        """Run the table's Checkpoint once over a file's distinct values.

        A file without rows has no values to evaluate: nothing is checked.
        """
        if distinct.empty:
            return SuiteResult([], [])
        values = distinct.values()
        frame = values_frame(contract, values)
        result = self.checkpoint(contract).run(batch_parameters={"dataframe": frame})
        checked: list[Checked] = []
        failures: list[Failure] = []
        for validation in result.run_results.values():
            for outcome in validation.results:
                config, meta = outcome.expectation_config, outcome.expectation_config.meta
                checked.append(
                    Checked(
                        meta["column"],
                        meta["rule"],
                        config.type,
                        plain_kwargs(config.kwargs),
                        bool(outcome.success),
                    )
                )
                if outcome.success:
                    continue
                if (message := raised_exception(outcome.exception_info)) is not None:
                    raise RuntimeError(
                        f"Great Expectations could not evaluate {config.type} "
                        f"for {contract.table}: {message}"
                    )
                positions = np.asarray(outcome.result.get("unexpected_index_list") or [], np.int64)
                column_values = values[meta["column"]]
                # Frame rows past a column's distinct values repeat its first value.
                positions = np.where(positions < len(column_values), positions, 0)
                failing = pc.unique(column_values.take(pa.array(positions, pa.int64())))
                failures.append(Failure(meta["column"], meta["rule"], failing))
        return SuiteResult(checked, failures)


def plain_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """An expectation's arguments as JSON values: dates in ISO, GX's batch id left out."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return (
                value.date().isoformat()
                if value.time() == datetime.min.time()
                else (value.isoformat())
            )
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return {name: plain(value) for name, value in kwargs.items() if name != "batch_id"}


def raised_exception(info: dict | None) -> str | None:
    """The message of an exception GX caught while evaluating an expectation, if any.

    GX reports it either flat or per metric it could not compute (a dict of such dicts);
    an expectation that could not be evaluated failed with no failing values, so missing
    it would accept every value it was to check.
    """
    if not info:
        return None
    parts = [info, *(v for v in info.values() if isinstance(v, dict))]
    for part in parts:
        if part.get("raised_exception"):
            return str(part.get("exception_message"))
    return None


# The dates Python's datetime can hold: a parsed date outside them (year 0, a negative
# year) is moved to the nearest, which lies outside every plausible range as well, so
# comparing it can neither fail nor pass it.
_DATETIME_RANGE = (pd.Timestamp("0001-01-01"), pd.Timestamp("9999-12-31"))


def values_frame(contract: Contract, distinct: dict[str, pa.Array]) -> pd.DataFrame:
    """A frame whose column c holds c's distinct values, padded by repeating the first.

    Derived columns (the number of an integer, the date and ISO spelling of a date)
    are computed from the same padded values, so they line up row by row.
    """
    length = max(1, max(len(v) for v in distinct.values()))
    frame: dict[str, pd.Series] = {}
    for column in contract.columns:
        values = distinct[column.name]
        first = values[0].as_py() if len(values) else None
        padded = values.to_pylist() + [first] * (length - len(values))
        text = pd.Series(padded, dtype=object)
        if column.type == "boolean":
            text = text.str.lower()
        elif column.type == "integer":
            frame[column.name + NUMBER_SUFFIX] = pd.to_numeric(text, errors="coerce")
        elif column.type == "date":
            parsed = pd.to_datetime(text, format=DATE_FORMAT, errors="coerce")
            frame[column.name + ISO_SUFFIX] = parsed.dt.strftime(DATE_FORMAT).astype(object)
            frame[column.name + DATE_SUFFIX] = parsed.clip(*_DATETIME_RANGE)
        frame[column.name] = text
    return pd.DataFrame(frame)
