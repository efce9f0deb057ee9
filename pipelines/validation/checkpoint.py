"""Run the contract suites as Great Expectations Checkpoints and turn failures into rows.

One ephemeral GX context per process holds a pandas data source, one Checkpoint
per suite (see `suites.py`) and, when asked, a Data Docs site on disk. A chunk of
rows is validated by running its two Checkpoints; `result_format` COMPLETE makes
GX return the index of every failing row, which is mapped back to the file's
line numbers and becomes a table of failures (source_row, column_name, rule, value).
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.contracts import Contract
from pipelines.validation import suites
from pipelines.validation.suites import (
    DATE_FORMAT,
    DATE_SUFFIX,
    ISO_SUFFIX,
    NUMBER_SUFFIX,
    checked_by_value,
)

DOCS_SITE = "redflags"
RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False}
FAILURES_SCHEMA = pa.schema(
    [
        ("source_row", pa.int64()),
        ("column_name", pa.string()),
        ("rule", pa.string()),
        ("value", pa.string()),
    ]
)


class Validator:
    """The GX context of one run: suites and Checkpoints are built once per table."""

    def __init__(self, load_date: date, docs_dir: Path | None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # GX reports through our summary, not through its own progress bars and log lines.
        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        self.gx = gx
        self.load_date = load_date
        self.docs_dir = Path(docs_dir) if docs_dir else None
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        if self.docs_dir is not None:
            self.docs_dir.mkdir(parents=True, exist_ok=True)
            self.context.add_data_docs_site(
                DOCS_SITE,
                {
                    "class_name": "SiteBuilder",
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(self.docs_dir.resolve()),
                    },
                },
            )
        self.source = self.context.data_sources.add_pandas("redflags")
        self._checkpoints: dict[str, object] = {}
        self._suites: dict[tuple[str, str], object] = {}

    def _suite(self, contract: Contract, kind: str):
        key = (contract.table, kind)
        if key not in self._suites:
            build = suites.values_suite if kind == "values" else suites.rows_suite
            self._suites[key] = build(contract, self.load_date)
        return self._suites[key]

    def checkpoint(self, suite):
        """The Checkpoint of one suite: validate a whole dataframe, update Data Docs."""
        if suite.name in self._checkpoints:
            return self._checkpoints[suite.name]
        gx = self.gx
        asset = self.source.add_dataframe_asset(suite.name)
        batch = asset.add_batch_definition_whole_dataframe(suite.name)
        suite = self.context.suites.add(suite)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=suite)
        )
        actions = (
            [gx.checkpoint.UpdateDataDocsAction(name="update_data_docs", site_names=[DOCS_SITE])]
            if self.docs_dir is not None
            else []
        )
        checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(
                name=suite.name,
                validation_definitions=[definition],
                actions=actions,
                result_format=RESULT_FORMAT,
            )
        )
        self._checkpoints[suite.name] = checkpoint
        return checkpoint

    def validate(self, contract: Contract, rows: pa.Table) -> pa.Table:
        """Every failing (row, column, rule) of one chunk, with the value as read."""
        found: list[pa.Table] = []
        distinct = _distinct_values(contract, rows)
        frame = values_frame(contract, distinct)
        suite = self._suite(contract, "values")
        for column, rule, positions in self._failures(suite, frame):
            values = distinct[column]
            failing = values.take(pa.array(np.where(positions < len(values), positions, 0)))
            mask = pc.is_in(rows[column], value_set=pc.unique(failing), skip_nulls=False)
            found.append(_failure_rows(rows, mask, column, rule))
        rows_suite = self._suite(contract, "rows")
        row_columns = suites.rows_columns(contract)
        if rows_suite.expectations and row_columns:
            frame = pd.DataFrame(
                {name: rows[name].to_numpy(zero_copy_only=False) for name in row_columns},
                index=pd.Index(rows["source_row"].to_numpy()),
            )
            for column, rule, source_rows in self._failures(rows_suite, frame):
                mask = pc.is_in(rows["source_row"], value_set=pa.array(source_rows, pa.int64()))
                found.append(_failure_rows(rows, mask, column, rule))
        if not found:
            return FAILURES_SCHEMA.empty_table()
        return pa.concat_tables(found)

    def _failures(self, suite, frame: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
        """(column, rule, failing indices) of each failed expectation of one Checkpoint run."""
        result = self.checkpoint(suite).run(batch_parameters={"dataframe": frame})
        failures = []
        for validation in result.run_results.values():
            for outcome in validation.results:
                if outcome.success:
                    continue
                if outcome.exception_info and outcome.exception_info.get("raised_exception"):
                    raise RuntimeError(
                        f"Great Expectations could not evaluate {outcome.expectation_config.type} "
                        f"of suite {suite.name}: {outcome.exception_info.get('exception_message')}"
                    )
                meta = outcome.expectation_config.meta
                indices = np.asarray(outcome.result.get("unexpected_index_list") or [], np.int64)
                failures.append((meta["column"], meta["rule"], indices))
        return failures


def _distinct_values(contract: Contract, rows: pa.Table) -> dict[str, pa.Array]:
    """The distinct values (NULL included) of each column checked by value."""
    distinct = {}
    for column in contract.columns:
        if checked_by_value(column):
            values = rows[column.name] if column.name in rows.column_names else None
            distinct[column.name] = (
                pc.unique(values)
                if values is not None and len(values)
                else pa.nulls(1, pa.string())
            )
    return distinct


def values_frame(contract: Contract, distinct: dict[str, pa.Array]) -> pd.DataFrame:
    """A frame whose column c holds c's distinct values, padded by repeating the first.

    Derived columns (the number of an integer, the date and ISO spelling of a date)
    are computed from the same padded values, so they line up row by row.
    """
    length = max(len(v) for v in distinct.values())
    frame: dict[str, pd.Series] = {}
    for column in contract.columns:
        if column.name not in distinct:
            continue
        values = distinct[column.name]
        padded = values.to_pylist() + [values[0].as_py()] * (length - len(values))
        text = pd.Series(padded, dtype=object)
        if column.type == "boolean":
            text = text.str.lower()
        elif column.type == "integer":
            frame[column.name + NUMBER_SUFFIX] = pd.to_numeric(text, errors="coerce")
        elif column.type == "date":
            parsed = pd.to_datetime(text, format=DATE_FORMAT, errors="coerce")
            frame[column.name + ISO_SUFFIX] = parsed.dt.strftime(DATE_FORMAT).astype(object)
            frame[column.name + DATE_SUFFIX] = parsed
        frame[column.name] = text
    return pd.DataFrame(frame)


def _failure_rows(rows: pa.Table, mask: pa.Array, column: str, rule: str) -> pa.Table:
    source_rows = rows["source_row"].filter(mask)
    n = len(source_rows)
    return pa.table(
        {
            "source_row": source_rows,
            "column_name": pa.array(np.full(n, column, dtype=object), pa.string()),
            "rule": pa.array(np.full(n, rule, dtype=object), pa.string()),
            "value": rows[column].filter(mask),
        },
        schema=FAILURES_SCHEMA,
    )
