"""The shape of features.presentation_flags: columns, SQL types, pandas dtypes."""

from __future__ import annotations

from pipelines.lazy_modules import pd
from pipelines.scoring.rules import RuleSet

FIXED_TYPES = {
    "encounter_id": "VARCHAR",
    "patient_id": "VARCHAR",
    "encounter_date": "DATE",
    "age_years": "INTEGER",
    "tier": "VARCHAR",
    "score": "INTEGER",
    "completeness": "DOUBLE",
    "rules_version": "VARCHAR",
}
SQL_OF = {"boolean": "BOOLEAN", "integer": "INTEGER", "string": "VARCHAR"}
PANDAS_OF = {
    "VARCHAR": "string",
    "DATE": "datetime64[us]",
    "INTEGER": "Int64",
    "BOOLEAN": "boolean",
    "DOUBLE": "float64",
}


def sql_types(rules: RuleSet) -> dict[str, str]:
    """SQL type of every output column, in output order."""
    typed = {f.name: SQL_OF[f.type] for f in [*rules.effective, *rules.features]}
    return {c: FIXED_TYPES.get(c) or typed[c] for c in rules.output_columns}


def table_ddl(rules: RuleSet, name: str = "features.presentation_flags") -> str:
    columns = ",\n    ".join(f"{c} {t}" for c, t in sql_types(rules).items())
    return f"CREATE OR REPLACE TABLE {name} (\n    {columns}\n)"


def cast_output(frame: pd.DataFrame, rules: RuleSet) -> pd.DataFrame:
    """One set of dtypes for both engines' results, so frames compare column by column."""
    dtypes = {c: PANDAS_OF[t] for c, t in sql_types(rules).items()}
    return frame[list(dtypes)].astype(dtypes).reset_index(drop=True)
