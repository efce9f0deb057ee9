"""The normalised complaint text and codes both engines match against.

The steps are in schemas/red_flags.yml (`text:`) and pipelines/scoring/text.py;
here they are written once for pandas and once for SQL, side by side.
"""

from __future__ import annotations

import pandas as pd

from pipelines.scoring import predicates as p
from pipelines.scoring.text import CLAUSE_MARK, KEEP, TextRules

# dx_codes: drop dots and white space, make non-ASCII unmatchable, upper case
# (pipelines.value_sets.normalize_code does the same for the value sets).
CODE_DROP = r"[.\s]"
NON_ASCII = r"[^\x00-\x7F]"


def complaint_text_pandas(chief_complaint: pd.Series, text: TextRules) -> pd.Series:
    s = chief_complaint.astype("string[pyarrow]").fillna("")
    s = s.str.replace(KEEP, " ", regex=True).str.lower()
    s = s.str.replace(text.clause_word_pattern, ",", regex=True)
    return s.str.replace(text.clause_mark_pattern, CLAUSE_MARK, regex=True)


def complaint_text_sql(text: TextRules) -> str:
    s = f"regexp_replace(coalesce(chief_complaint, ''), {p.sql_str(KEEP)}, ' ', 'g')"
    s = f"regexp_replace(lower({s}), {p.sql_str(text.clause_word_pattern)}, ',', 'g')"
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
    return complaint_text.str.contains(text.cue_pattern, regex=True).astype("boolean")


def has_cue_sql(text: TextRules) -> str:
    return f"regexp_matches({p.TEXT}, {p.sql_str(text.cue_pattern)})"
