"""The codes as both engines match them, written once per engine.

(The complaint text is normalised by the ConText steps, pipelines/scoring/context.py.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines import codes

if TYPE_CHECKING:
    import pandas as pd


def codes_pandas(dx_codes: pd.Series) -> pd.Series:
    """dx_codes as compared (`pipelines.codes`), NULL as no codes."""
    return codes.normalize_pandas(dx_codes.astype("string").fillna(""))


def codes_sql() -> str:
    return codes.normalize_sql("coalesce(dx_codes, '')")
