"""The scoring engines: one named result, two implementations, one dispatch, one default.

`features.presentation_flags` is computed by the rules rendered to DuckDB SQL or
evaluated column by column in pandas; both give identical results (a parity test
runs them side by side). Everything that scores (the warehouse's stage, `redflags
score`, the tests) picks its engine here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.errors import UserError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from pipelines.scoring.rules import RuleSet

ENGINES: tuple[str, ...] = ("pandas", "duckdb")
DEFAULT_ENGINE = "duckdb"
# Rows per Arrow batch of the pandas result that DuckDB scans (its row-group size).
ARROW_BATCH_ROWS = 122_880


def check_engine(engine: str | None) -> str:
    """The engine by name (None: the default); an unknown name is a usage error."""
    engine = engine or DEFAULT_ENGINE
    if engine not in ENGINES:
        raise UserError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}", exit_code=2)
    return engine


def scored_select(
    con: duckdb.DuckDBPyConnection,
    engine: str,
    rules: RuleSet,
    row_key: str | None = None,
    diagnoses: bool = False,
) -> str:
    """A SELECT of the scored rows of `staging.intake` on `con`, by either engine.

    DuckDB: the rendered SQL, run in place (`row_key` keys the rows of staging.intake:
    `rowid` of a table; a view over a file passes its own row number). pandas: the
    intake fetched as a frame, scored, and registered for DuckDB to read. With
    `diagnoses`, the history also reads staging.diagnoses.
    """
    from pipelines.scoring import duckdb_engine

    if check_engine(engine) == "duckdb":
        key = row_key or duckdb_engine.TABLE_ROW_KEY
        return duckdb_engine.render_sql(rules, key, diagnoses)
    import pyarrow as pa

    from pipelines.scoring.pandas_engine import diagnoses_frame, intake_frame, score_pandas

    found = diagnoses_frame(con) if diagnoses else None
    frame = score_pandas(intake_frame(con), rules, found)
    # As an Arrow table: DuckDB reads Arrow columns in place, while scanning the
    # frame's nullable pandas columns took 3.5 s per million rows. In batches of a
    # row group each: the frame's columns come out in one chunk (or a few uneven
    # ones), and a scan thread takes a whole batch, so the write was one-sided.
    table = pa.Table.from_pandas(frame, preserve_index=False)
    batches = table.to_batches(ARROW_BATCH_ROWS)
    con.register("scored_frame", pa.Table.from_batches(batches, schema=table.schema))
    return "SELECT * REPLACE (CAST(encounter_date AS DATE) AS encounter_date) FROM scored_frame"


def score_frame(
    intake: pd.DataFrame,
    engine: str = DEFAULT_ENGINE,
    rules: RuleSet | None = None,
    diagnoses: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """features.presentation_flags for an intake frame (and optionally its diagnoses),
    by either engine (tests, tools)."""
    from pipelines.scoring.rules import load_rules

    rules = rules or load_rules()
    if check_engine(engine) == "pandas":
        from pipelines.scoring.pandas_engine import score_pandas

        return score_pandas(intake, rules, diagnoses)
    from pipelines.scoring.duckdb_engine import score_duckdb

    return score_duckdb(intake, rules, diagnoses)
