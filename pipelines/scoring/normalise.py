"""The complaint text and codes as both engines match them, written once per engine.

The hot path works on the lower-cased complaint (`complaint_text`): mentions are
found there with patterns equivalent to word-boundary matches in the normalised
text (pipelines/scoring/text.py). The full normalisation (steps in
schemas/red_flags.yml `text:`) is only computed for the few texts that hold a
negation cue and a mention, where words and clauses must be counted.
"""

from __future__ import annotations

from pipelines.lazy_modules import pd
from pipelines.scoring import predicates as p
from pipelines.scoring.text import CLAUSE_MARK, KEEP, TextRules

# dx_codes: drop dots and white space, make non-ASCII unmatchable, upper case
# (pipelines.value_sets.normalize_code does the same for the value sets).
CODE_DROP = r"[.\s]"
NON_ASCII = r"[^\x00-\x7F]"


def complaint_text_pandas(chief_complaint: pd.Series) -> pd.Series:
    return chief_complaint.astype("string[pyarrow]").fillna("").str.lower()


def complaint_text_sql() -> str:
    return "lower(coalesce(chief_complaint, ''))"


def normalised_pandas(complaint_text: pd.Series, text: TextRules) -> pd.Series:
    s = complaint_text.str.replace(KEEP, " ", regex=True)
    s = s.str.replace(text.clause_word_pattern, ",", regex=True)
    return s.str.replace(text.clause_mark_pattern, CLAUSE_MARK, regex=True)


def normalised_sql(complaint_text: str, text: TextRules) -> str:
    s = f"regexp_replace({complaint_text}, {p.sql_str(KEEP)}, ' ', 'g')"
    s = f"regexp_replace({s}, {p.sql_str(text.clause_word_pattern)}, ',', 'g')"
    return (
        f"regexp_replace({s}, {p.sql_str(text.clause_mark_pattern)}, {p.sql_str(CLAUSE_MARK)}, 'g')"
    )


def codes_pandas(dx_codes: pd.Series) -> pd.Series:
    s = dx_codes.astype("string[pyarrow]").fillna("")
    return (
        s.str.replace(CODE_DROP, "", regex=True).str.replace(NON_ASCII, "?", regex=True).str.upper()
    )


def codes_sql() -> str:
    s = f"regexp_replace(coalesce(dx_codes, ''), {p.sql_str(CODE_DROP)}, '', 'g')"
    return f"upper(regexp_replace({s}, {p.sql_str(NON_ASCII)}, '?', 'g'))"


def has_cue_pandas(complaint_text: pd.Series, text: TextRules) -> pd.Series:
    return p.contains_phrases_pandas(complaint_text, list(text.cues), text)


def has_cue_sql(text: TextRules) -> str:
    return p.contains_phrases_sql(p.TEXT, list(text.cues), text)
