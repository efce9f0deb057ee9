"""The DuckDB engine: the rules rendered as one readable SQL query over `staging.intake`.

`render_sql` returns the query; the warehouse's scoring stage and `redflags score` run it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from pipelines.config import DEFAULT_MEMORY_LIMIT
from pipelines.scoring import history, matches
from pipelines.scoring.output import cast_output, sql_types
from pipelines.scoring.rules import ID_COLUMNS, INPUT_COLUMNS, RuleSet
from pipelines.sqltext import literal

if TYPE_CHECKING:
    import pandas as pd

SOURCE = "staging.intake"
# Numbers the rows of a table SOURCE for the join back from the history windows.
# `rowid` is read with the scan, on every thread; `row_number() OVER ()` would run
# the scan, the matches and the effective values on one thread (a streaming window
# is not a parallel operator).
TABLE_ROW_KEY = "rowid"


def _select(items: list[tuple[str, str]]) -> str:
    return ",\n".join(
        f"        {expr} AS {name}" if expr != name else f"        {name}" for name, expr in items
    )


def render_sql(rules: RuleSet, row_key: str = TABLE_ROW_KEY, diagnoses: bool = False) -> str:
    """The whole scoring query, one CTE per stage, each opening with its rule.

    `row_key` is an expression unique per row of SOURCE: `rowid` when SOURCE is a
    table (the warehouse, the tests); a view over a file passes its own row number.
    With `diagnoses`, the history also reads staging.diagnoses (history.DIAGNOSES).
    """
    env = rules.env()
    ever = [(e.name, e.here.sql(env)) for e in rules.ever]
    diagnosed = (
        [
            (e.name, history.diagnosis_match_sql(e.icd10_pattern, e.snomed_codes))
            for e in rules.ever
            if e.icd10_pattern is not None
        ]
        if diagnoses
        else None
    )
    carried = list(ID_COLUMNS + INPUT_COLUMNS)
    raw_booleans = [f.name for f in rules.effective]
    inputs = _select(
        [(c, c) for c in carried + raw_booleans + ["chief_complaint", "dx_codes"]]
        + [(history.ROW_KEY, row_key)]
    )
    effective = _select(
        [(c, c) for c in [*carried, history.ROW_KEY, *matches.carried(rules)]]
        + [(f.name, f"-- {f.name}\n        " + f.expr.sql(env)) for f in rules.effective]
    )
    features = _select([("*", "*")] + [(f.name, f.expr.sql(env)) for f in rules.features])
    types = sql_types(rules)
    final = _select(
        [(c, c) for c in rules.output_columns if c in carried or c in raw_booleans]
        + [(f.name, f.name) for f in rules.features]
        + [
            ("tier", rules.tier.sql(env)),
            ("score", f"CAST({rules.score.sql(env)} AS INTEGER)"),
            (
                "completeness",
                f"CAST({rules.completeness.sql(env)} AS DOUBLE) / {len(rules.symptom_names)}",
            ),
            ("rules_version", literal(rules.version)),
        ]
    )
    final_columns = ",\n".join(f"    CAST({c} AS {t}) AS {c}" for c, t in types.items())
    return f"""-- features.presentation_flags: red-flag features, tier and score per presentation.
-- Rendered from schemas/red_flags.yml (rules_version {rules.version}).
WITH
inputs AS (
    -- The intake columns the rules read, and a key for each row (to join the
    -- history helpers back).
    SELECT
{inputs}
    FROM {SOURCE}
),
{matches.matches_sql(rules, SOURCE)},
effective AS (
    -- Effective value of each field: structured > code or un-negated text >
    -- negated-only text > NULL; back_pain never NULL; pain_site falls back to
    -- codes, text, then 'unspecified'.
    SELECT
{effective}
    FROM {matches.join_sql("inputs")}
),
{history.history_sql("effective", rules.window_days, rules.washout_days, ever, diagnosed)},
features AS (
    -- Derived features (red_flags.yml `features:`), on the rows with their history.
    SELECT
{features}
    FROM effective JOIN episodes USING ({history.ROW_KEY})
),
scored AS (
    -- Tier (first that matches; NULL counts as not present), score (sum of the
    -- weights of TRUE features) and completeness (share of the
    -- {len(rules.symptom_names)} fields not NULL).
    SELECT
{final}
    FROM features
)
SELECT
{final_columns}
FROM scored
ORDER BY {", ".join(history.ORDER)}
"""


def register_intake(con: duckdb.DuckDBPyConnection, intake: pd.DataFrame) -> None:
    """Make a DataFrame the engine's `staging.intake` (typed per the contract)."""
    from pipelines.contracts import load_contract

    contract = load_contract("intake")
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.register("intake_frame", intake)
    present = set(intake.columns)
    select = ", ".join(
        f"CAST({c.name} AS {c.duckdb_type}) AS {c.name}"
        if c.name in present
        else f"CAST(NULL AS {c.duckdb_type}) AS {c.name}"
        for c in contract.columns
    )
    con.execute(f"CREATE OR REPLACE TABLE {SOURCE} AS SELECT {select} FROM intake_frame")
    con.unregister("intake_frame")


def register_diagnoses(con: duckdb.DuckDBPyConnection, diagnoses: pd.DataFrame) -> None:
    """Make a DataFrame the engine's `staging.diagnoses` (typed per the contract)."""
    from pipelines.contracts import load_contract

    contract = load_contract("diagnoses")
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.register("diagnoses_frame", diagnoses)
    select = ", ".join(f"CAST({c.name} AS {c.duckdb_type}) AS {c.name}" for c in contract.columns)
    con.execute(
        f"CREATE OR REPLACE TABLE {history.DIAGNOSES} AS SELECT {select} FROM diagnoses_frame"
    )
    con.unregister("diagnoses_frame")


def score_duckdb(
    intake: pd.DataFrame, rules: RuleSet, diagnoses: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Score a frame in an in-memory database (used by tests and the CLI)."""
    con = duckdb.connect(config={"memory_limit": DEFAULT_MEMORY_LIMIT})
    try:
        register_intake(con, intake)
        if diagnoses is not None:
            register_diagnoses(con, diagnoses)
        sql = render_sql(rules, diagnoses=diagnoses is not None)
        return cast_output(con.execute(sql).df(), rules)
    finally:
        con.close()
