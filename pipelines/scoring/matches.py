"""Text and code matches, computed once per distinct value and joined back to the rows.

A match node (pipelines/scoring/predicates.py `Match`) depends on one column's
value only, and chief complaints and code strings repeat a great deal, so both
engines evaluate the matches on the distinct values and join them back to the
rows: the DuckDB engine with `SELECT DISTINCT` CTEs and a join, the pandas
engine with factorize and take. The result is the same as matching every row
(a row gets exactly the values computed for its own text). When every value is
distinct the work is the row-by-row matching plus one hash of each value and
one join (DuckDB) or take (pandas) per row.

Complaints go one step further: both engines cut them into pieces at the
clause marks (`piece_marks`) and match each distinct piece once.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pipelines.scoring import normalise
from pipelines.scoring import predicates as p
from pipelines.scoring.rules import RuleSet
from pipelines.scoring.text import HARD_MARKS
from pipelines.sqltext import literal

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def _walk(expr: p.Expr) -> list[p.Match]:
    found = [expr] if isinstance(expr, p.Match) else []
    for child in expr.children():
        found += _walk(child)
    return found


def _unique(nodes: list[p.Match]) -> list[p.Match]:
    by_column: dict[str, p.Match] = {}
    for node in nodes:
        by_column.setdefault(node.match_column, node)
    return list(by_column.values())


def _all_nodes(rules: RuleSet) -> list[p.Match]:
    exprs = [f.expr for f in [*rules.effective, *rules.features]]
    return [n for e in [*exprs, rules.tier, rules.score, rules.completeness] for n in _walk(e)]


def text_mentions(rules: RuleSet) -> list[p.TextMentionsAny]:
    """One mention test per phrase list the rules look for (affirmed ones need it too)."""
    names = [
        n.phrases for n in _all_nodes(rules) if isinstance(n, p.TextMentions | p.TextMentionsAny)
    ]
    return _unique([p.TextMentionsAny(name) for name in names])


def text_affirmations(rules: RuleSet) -> list[p.TextMentions]:
    return _unique([n for n in _all_nodes(rules) if isinstance(n, p.TextMentions)])


def code_matches(rules: RuleSet) -> list[p.InValueSet]:
    return _unique([n for n in _all_nodes(rules) if isinstance(n, p.InValueSet)])


def carried(rules: RuleSet) -> list[str]:
    """Match columns read after the effective stage (features, tier), kept on the rows."""
    later = [f.expr for f in rules.features] + [rules.tier, rules.score, rules.completeness]
    return [n.match_column for n in _unique([n for e in later for n in _walk(e)])]


def piece_marks(rules: RuleSet) -> str:
    """The characters a complaint is cut at before matching, so pieces can be matched alone.

    A clause mark that the text patterns never step over (pipelines/scoring/text.py
    keeps . ; , out of word gaps and counts them as word edges) and that no phrase
    or cue contains: a mention or a cue lies inside one piece, and a negation stays
    inside its clause. So a complaint mentions (or affirms) a phrase list exactly
    when one of its pieces does. Pieces repeat far more than whole complaints (about
    100 distinct pieces in the 99k distinct complaints of the 1M-row benchmark);
    when every piece is distinct, the matching does the same regex work as on whole
    complaints, plus the cut and one aggregation per piece.
    """
    words = [*rules.text.cues, *(w for ws in rules.phrases.values() for w in ws)]
    return "".join(
        c for c in rules.text.clause_marks if c in HARD_MARKS and not any(c in w for w in words)
    )


def _mark_class(marks: str) -> str:
    return "[" + re.escape(marks) + "]"


# --- pandas -------------------------------------------------------------------------------


def _distinct(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Position of each row's value among the distinct values (NULL is one value), and those."""
    import pandas as pd

    positions, uniques = pd.factorize(values, use_na_sentinel=False)
    return pd.Series(positions), pd.Series(uniques, dtype=values.dtype)


def _taken(per_value: pd.DataFrame, positions: pd.Series, index: pd.Index) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {c: per_value[c].array.take(positions.to_numpy()) for c in per_value.columns}, index=index
    )


def _piece_matches_pandas(pieces: pd.Series, rules: RuleSet) -> pd.DataFrame:
    """The text match columns of distinct lower-cased texts (pieces of complaints)."""
    import pandas as pd

    env = rules.env()
    env.frame = pd.DataFrame(
        {p.TEXT: pieces, p.HAS_CUE: normalise.has_cue_pandas(pieces, rules.text)}
    )
    for node in text_mentions(rules):
        env.frame[node.match_column] = node.match_pandas(env)
    cued = env.frame[p.HAS_CUE].to_numpy(dtype=bool)
    env.frame[p.CLAUSES] = normalise.normalised_pandas(pieces.where(cued), rules.text)
    for node in text_affirmations(rules):
        env.frame[node.match_column] = node.match_pandas(env)
    return env.frame[[n.match_column for n in [*text_mentions(rules), *text_affirmations(rules)]]]


def complaint_matches_pandas(chief_complaint: pd.Series, rules: RuleSet) -> pd.DataFrame:
    """The text match columns for each row, computed on the distinct pieces of complaints.

    As in the DuckDB engine (`matches_sql`): each distinct complaint is cut at the
    `piece_marks`, each distinct piece is matched once, and a complaint matches
    where any of its pieces does (a logical-or over each complaint's run of pieces).
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    positions, complaints = _distinct(chief_complaint)
    text = normalise.complaint_text_pandas(complaints)
    marks = piece_marks(rules)
    if marks:
        cut = pc.split_pattern_regex(_one_array(text), _mark_class(marks))
    else:
        cut = pa.array([[t] for t in text.to_list()], type=pa.list_(pa.large_string()))
    piece_positions, pieces = _distinct(pd.Series(cut.flatten(), dtype=text.dtype))
    per_piece = _piece_matches_pandas(pieces, rules)
    starts = cut.offsets.to_numpy()[:-1]  # every complaint has at least one piece
    per_complaint = pd.DataFrame(
        {
            c: np.logical_or.reduceat(
                per_piece[c].to_numpy(dtype=bool).take(piece_positions.to_numpy()), starts
            )
            for c in per_piece.columns
        },
        dtype=p.BOOL,
    )
    return _taken(per_complaint, positions, chief_complaint.index)


def _one_array(strings: pd.Series) -> pa.Array:
    """The Series' Arrow strings as one array (list offsets need one): pandas may hold
    them in several chunks, or in a chunked array of no chunk when the Series is empty."""
    import pyarrow as pa

    values = pa.array(strings.array)
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def code_matches_pandas(dx_codes: pd.Series, rules: RuleSet) -> pd.DataFrame:
    """The value-set match columns for each row, computed on the distinct dx_codes."""
    import pandas as pd

    positions, distinct_codes = _distinct(dx_codes)
    env = rules.env()
    env.frame = pd.DataFrame({p.CODES: normalise.codes_pandas(distinct_codes)})
    nodes = code_matches(rules)
    for node in nodes:
        env.frame[node.match_column] = node.match_pandas(env)
    return _taken(env.frame[[n.match_column for n in nodes]], positions, dx_codes.index)


# --- SQL ----------------------------------------------------------------------------------


def _columns(items: list[tuple[str, str]]) -> str:
    return ",\n".join(f"        {expr} AS {name}" for name, expr in items)


def matches_sql(rules: RuleSet, source: str) -> str:
    """CTEs `complaint_matches` and `code_matches` over `source`'s distinct values.

    Complaints are matched piece by piece (see `piece_marks`): the matches of
    each distinct piece are computed once, and a complaint's are those of any of
    its pieces.
    """
    env = rules.env()
    mention_nodes = text_mentions(rules)
    affirm_nodes = text_affirmations(rules)
    mentions = _columns(
        [(p.HAS_CUE, normalise.has_cue_sql(rules.text))]
        + [(n.match_column, n.match_sql(env)) for n in mention_nodes]
    )
    affirmed = _columns([(n.match_column, n.match_sql(env)) for n in affirm_nodes])
    any_piece = _columns(
        [(n.match_column, f"bool_or({n.match_column})") for n in [*mention_nodes, *affirm_nodes]]
    )
    clauses = normalise.normalised_sql(p.TEXT, rules.text)
    marks = piece_marks(rules)
    text = normalise.complaint_text_sql()
    pieces = f"string_split_regex({text}, {literal(_mark_class(marks))})" if marks else f"[{text}]"
    codes = _columns([(n.match_column, n.match_sql(env)) for n in code_matches(rules)])
    return f"""complaint_pieces AS (
    -- Each distinct complaint (complaints repeat; the matches are joined back to
    -- the rows below), lower case, cut into pieces at the clause marks {marks}: no
    -- phrase, cue or negation reaches across one, and pieces repeat far more than
    -- whole complaints do.
    SELECT chief_complaint, unnest({pieces}) AS {p.TEXT}
    FROM (SELECT DISTINCT chief_complaint FROM {source})
),
pieces AS (
    -- Each distinct piece once: whether it holds a negation cue, and whether it
    -- mentions each phrase list, negated or not.
    SELECT
        {p.TEXT},
{mentions}
    FROM (SELECT DISTINCT {p.TEXT} FROM complaint_pieces)
),
piece_matches AS (
    -- Un-negated mentions: only pieces with a cue are normalised into words and
    -- clauses, and only those that also mention a phrase list look for it again
    -- with the negated mentions (cue to mention) cut out.
    SELECT
        *,
{affirmed}
    FROM (
        SELECT *, CASE WHEN {p.HAS_CUE} THEN {clauses} END AS {p.CLAUSES}
        FROM pieces
    )
),
complaint_matches AS (
    -- A complaint mentions (or affirms) a phrase list when one of its pieces does.
    SELECT
        chief_complaint,
{any_piece}
    FROM complaint_pieces JOIN piece_matches USING ({p.TEXT})
    GROUP BY chief_complaint
),
code_matches AS (
    -- Each distinct dx_codes once, normalised (upper case, no dots or spaces):
    -- whether one of its codes is in each value set.
    SELECT
        dx_codes,
{codes}
    FROM (
        SELECT dx_codes, {normalise.codes_sql()} AS {p.CODES}
        FROM (SELECT DISTINCT dx_codes FROM {source})
    )
)"""


def join_sql(source: str) -> str:
    """`source` with its complaint and code matches (NULL text or codes match as one value)."""
    on = [
        f"{source}.{c} IS NOT DISTINCT FROM {table}.{c}"
        for c, table in (("chief_complaint", "complaint_matches"), ("dx_codes", "code_matches"))
    ]
    return (
        f"{source}\n    JOIN complaint_matches\n        ON {on[0]}\n"
        f"    JOIN code_matches\n        ON {on[1]}"
    )
