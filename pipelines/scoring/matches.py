"""Text and code matches, computed once per distinct value and joined back to the rows.

A match node (pipelines/scoring/predicates.py `Match`) depends on one column's
value only, and chief complaints and code strings repeat a great deal, so both
engines evaluate the matches on the distinct values and join them back to the
rows: the DuckDB engine with `SELECT DISTINCT` CTEs and a join, the pandas
engine with factorize and take. The result is the same as matching every row
(a row gets exactly the values computed for its own text). When every value is
distinct the work is the row-by-row matching plus one hash of each value and
one join (DuckDB) or take (pandas) per row.

Complaints are read by the ConText steps of pipelines/scoring/context.py: each
distinct complaint is normalised once, and every phrase list's mentions in it
are read in one pass over all lists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.scoring import context, normalise
from pipelines.scoring import predicates as p
from pipelines.scoring.rules import RuleSet
from pipelines.sqltext import literal

if TYPE_CHECKING:
    import pandas as pd


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
    exprs = [f.expr for f in [*rules.effective, *rules.features]] + [e.here for e in rules.ever]
    return [n for e in [*exprs, rules.tier, rules.score, rules.completeness] for n in _walk(e)]


def text_reads(rules: RuleSet) -> list[p.TextRead]:
    """One reading per phrase list the rules look at (all readings share its flags)."""
    return _unique([n for n in _all_nodes(rules) if isinstance(n, p.TextRead)])


def code_matches(rules: RuleSet) -> list[p.InValueSet]:
    return _unique([n for n in _all_nodes(rules) if isinstance(n, p.InValueSet)])


def carried(rules: RuleSet) -> list[str]:
    """Match columns read after the effective stage (history, features, tier), kept on the rows."""
    later = [f.expr for f in rules.features] + [rules.tier, rules.score, rules.completeness]
    later += [e.here for e in rules.ever]
    return [n.match_column for n in _unique([n for e in later for n in _walk(e)])]


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


def complaint_matches_pandas(chief_complaint: pd.Series, rules: RuleSet) -> pd.DataFrame:
    """The text flag columns for each row, computed on the distinct complaints.

    As in the DuckDB engine (`matches_sql`): each distinct complaint is normalised
    once, marked for each phrase list, and the texts that mention a list are read
    together (pipelines/scoring/context.py `flags_pandas`).
    """
    import pandas as pd

    positions, complaints = _distinct(chief_complaint)
    nodes = text_reads(rules)
    normalised = context.normalise_arrow(context.text_array(complaints), rules.lexicon)
    lists = [rules.phrases[n.phrases] for n in nodes]
    flags = context.flags_pandas(normalised, lists, rules.lexicon)
    per_complaint = pd.DataFrame(
        {n.match_column: f for n, f in zip(nodes, flags, strict=True)}, index=complaints.index
    )
    return _taken(per_complaint, positions, chief_complaint.index)


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

    Each distinct complaint is normalised once and marked for each phrase list
    the rules read; the (complaint, list) pairs that mention the list are read
    together by the ConText steps (pipelines/scoring/context.py `reading_sql`),
    keyed complaint_key * lists + list.
    """
    env = rules.env()
    nodes = text_reads(rules)
    n = max(len(nodes), 1)
    lexicon = rules.lexicon
    selects = []
    for i, node in enumerate(nodes):
        phrases = rules.phrases[node.phrases]
        after_cues = lexicon.marks_after_cues(phrases)
        text = "cue_marked" if after_cues else "normalised"
        marked = context.replaced_sql(text, lexicon.mention_passes(phrases))
        # Only complaints holding a word of each phrase can mention the list.
        holds = " OR ".join(
            f"contains(normalised, {literal(w)})" for w in context.keywords(phrases, lexicon)
        )
        selects.append(
            f"    SELECT complaint_key * {n} + {i} AS row_key, {marked} AS marked, "
            f"{str(after_cues).lower()} AS cues_marked\n    FROM normalised_texts\n"
            f"    WHERE {holds or 'false'}"
        )
    marked = "\n    UNION ALL\n".join(selects) or (
        f"    SELECT CAST(NULL AS BIGINT) AS row_key, {literal('')} AS marked, "
        "false AS cues_marked WHERE false"
    )
    normalised = context.normalised_sql("chief_complaint", lexicon)
    flags = _columns(
        [
            (
                node.match_column,
                f"CAST(coalesce(max(flags) FILTER (WHERE row_key % {n} = {i}), 0) AS TINYINT)",
            )
            for i, node in enumerate(nodes)
        ]
    )
    codes = _columns([(c.match_column, c.match_sql(env)) for c in code_matches(rules)])
    return f"""complaint_texts AS MATERIALIZED (
    -- Each distinct complaint once (complaints repeat; the matches are joined back
    -- to the rows below), normalised.
    SELECT chief_complaint, {normalised} AS normalised
    FROM (SELECT DISTINCT chief_complaint FROM {source})
),
normalised_texts AS MATERIALIZED (
    -- Each distinct normalised complaint once (complaints that differ in case or
    -- punctuation only read alike), with a key; and with its pseudo-negations and
    -- cues marked, for the phrase lists that share no word with a cue.
    SELECT
        complaint_key,
        normalised,
        {context.replaced_sql("normalised", lexicon.mark_passes)} AS cue_marked
    FROM (
        SELECT normalised, row_number() OVER () AS complaint_key
        FROM (SELECT DISTINCT normalised FROM complaint_texts)
    )
),
context_marked AS (
    -- Each complaint marked for each phrase list the rules read: mentions M<words>
    -- (on the cue-marked text where the list allows, pipelines/scoring/context.py
    -- `Lexicon.marks_after_cues`).
{marked}
),
{context.reading_sql(lexicon, cues_marked=True)},
normalised_matches AS (
    -- The flags of each normalised complaint's reading of each phrase list (0: no
    -- mention).
    SELECT
        normalised,
{flags}
    FROM normalised_texts LEFT JOIN context_flags
        ON context_flags.row_key // {n} = normalised_texts.complaint_key
    GROUP BY normalised
),
complaint_matches AS (
    -- Each complaint has the flags of its normalised text.
    SELECT complaint_texts.chief_complaint, normalised_matches.* EXCLUDE (normalised)
    FROM complaint_texts JOIN normalised_matches USING (normalised)
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
