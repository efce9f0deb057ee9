"""Red-flag scoring: rules as data (schemas/red_flags.yml), two engines, one result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pipelines.scoring.rules import RuleSet, load_rules

if TYPE_CHECKING:
    import pandas as pd

Engine = Literal["pandas", "duckdb"]


def score_frame(intake: pd.DataFrame, engine: Engine = "duckdb", rules: RuleSet | None = None):
    """features.presentation_flags for an intake frame, by either engine."""
    rules = rules or load_rules()
    if engine == "pandas":
        from pipelines.scoring.pandas_engine import score_pandas

        return score_pandas(intake, rules)
    from pipelines.scoring.duckdb_engine import score_duckdb

    return score_duckdb(intake, rules)


__all__ = ["Engine", "RuleSet", "load_rules", "score_frame"]
