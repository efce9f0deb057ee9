"""The complaint text and codes as both engines match them, written once per engine.

The hot path works on the lower-cased complaint (`complaint_text`): mentions are
found there with patterns equivalent to word-boundary matches in the normalised
text (pipelines/scoring/text.py). The full normalisation (steps in
schemas/red_flags.yml `text:`) is only computed for the few texts that hold a
negation cue and a mention, where words and clauses must be counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines import codes
from pipelines.scoring import predicates as p
from pipelines.scoring.text import CLAUSE_MARK, KEEP, TextRules
from pipelines.sqltext import literal

if TYPE_CHECKING:
    import pandas as pd


def complaint_text_pandas(chief_complaint: pd.Series) -> pd.Series:
    return chief_complaint.astype("string").fillna("").str.lower()


def complaint_text_sql() -> str:
    return "lower(coalesce(chief_complaint, ''))"


def normalised_pandas(complaint_text: pd.Series, text: TextRules) -> pd.Series:
    s = complaint_text.str.replace(KEEP, " ", regex=True)
    s = s.str.replace(text.clause_word_pattern, ",", regex=True)
    return s.str.replace(text.clause_mark_pattern, CLAUSE_MARK, regex=True)


def normalised_sql(complaint_text: str, text: TextRules) -> str:
    s = f"regexp_replace({complaint_text}, {literal(KEEP)}, ' ', 'g')"
    s = f"regexp_replace({s}, {literal(text.clause_word_pattern)}, ',', 'g')"
    return f"regexp_replace({s}, {literal(text.clause_mark_pattern)}, {literal(CLAUSE_MARK)}, 'g')"


def codes_pandas(dx_codes: pd.Series) -> pd.Series:
    """dx_codes as compared (`pipelines.codes`), NULL as no codes."""
    return codes.normalize_pandas(dx_codes.astype("string").fillna(""))


def codes_sql() -> str:
    return codes.normalize_sql("coalesce(dx_codes, '')")


def has_cue_pandas(complaint_text: pd.Series, text: TextRules) -> pd.Series:
    return p.contains_phrases_pandas(complaint_text, list(text.cues), text)


def has_cue_sql(text: TextRules) -> str:
    return p.contains_phrases_sql(p.TEXT, list(text.cues), text)
