"""The shape of features.presentation_flags: its columns and their types.

The types are contract types (`pipelines.contracts` turns them into DuckDB and pandas
types): the intake columns carried through keep their contract's type, every feature
has the type its rule declares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.contracts import DUCKDB_TYPES, PANDAS_DTYPES, load_contract
from pipelines.scoring.rules import ID_COLUMNS, RuleSet

if TYPE_CHECKING:
    import pandas as pd

TABLE = "features.presentation_flags"
COMPUTED_TYPES = {"tier": "string", "score": "integer", "completeness": "double"}


def column_types(rules: RuleSet) -> dict[str, str]:
    """Contract type of every output column, in output order."""
    intake = load_contract("intake")
    typed = {c: intake.column(c).type for c in ID_COLUMNS}
    typed |= {f.name: f.type for f in [*rules.effective, *rules.features]}
    typed |= COMPUTED_TYPES | {"rules_version": "string"}
    return {c: typed[c] for c in rules.output_columns}


def sql_types(rules: RuleSet) -> dict[str, str]:
    """SQL type of every output column, in output order."""
    return {c: DUCKDB_TYPES[t] for c, t in column_types(rules).items()}


def table_ddl(rules: RuleSet, name: str = TABLE) -> str:
    columns = ",\n    ".join(f"{c} {t}" for c, t in sql_types(rules).items())
    return f"CREATE OR REPLACE TABLE {name} (\n    {columns}\n)"


def cast_output(frame: pd.DataFrame, rules: RuleSet) -> pd.DataFrame:
    """One set of dtypes for both engines' results, so frames compare column by column."""
    dtypes = {c: PANDAS_DTYPES[t] for c, t in column_types(rules).items()}
    return frame[list(dtypes)].astype(dtypes).reset_index(drop=True)
