"""Text and code matches, computed once per distinct complaint and per distinct dx_codes.

A match node (pipelines/scoring/predicates.py `Match`) depends on one column's
value only, and chief complaints and code strings repeat a great deal, so both
engines evaluate the matches on the distinct values and join them back to the
rows: the DuckDB engine with `SELECT DISTINCT` CTEs and a join, the pandas
engine with factorize and take. The result is the same as matching every row
(a row gets exactly the values computed for its own text). When every value is
distinct the work is the row-by-row matching plus one hash of each value and
one join (DuckDB) or take (pandas) per row.
"""

from __future__ import annotations

from pipelines.lazy_modules import pd
from pipelines.scoring import normalise
from pipelines.scoring import predicates as p
from pipelines.scoring.rules import RuleSet


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


# --- pandas -------------------------------------------------------------------------------


def _distinct(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Position of each row's value among the distinct values (NULL is one value), and those."""
    positions, uniques = pd.factorize(values, use_na_sentinel=False)
    return pd.Series(positions), pd.Series(uniques, dtype=values.dtype)


def _taken(per_value: pd.DataFrame, positions: pd.Series, index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame(
        {c: per_value[c].array.take(positions.to_numpy()) for c in per_value.columns}, index=index
    )


def complaint_matches_pandas(chief_complaint: pd.Series, rules: RuleSet) -> pd.DataFrame:
    """The text match columns for each row, computed on the distinct complaints."""
    positions, complaints = _distinct(chief_complaint)
    env = rules.env()
    text = normalise.complaint_text_pandas(complaints)
    env.frame = pd.DataFrame({p.TEXT: text, p.HAS_CUE: normalise.has_cue_pandas(text, rules.text)})
    for node in text_mentions(rules):
        env.frame[node.match_column] = node.match_pandas(env)
    cued = env.frame[p.HAS_CUE].to_numpy(dtype=bool)
    env.frame[p.CLAUSES] = normalise.normalised_pandas(text.where(cued), rules.text)
    for node in text_affirmations(rules):
        env.frame[node.match_column] = node.match_pandas(env)
    columns = [n.match_column for n in [*text_mentions(rules), *text_affirmations(rules)]]
    return _taken(env.frame[columns], positions, chief_complaint.index)


def code_matches_pandas(dx_codes: pd.Series, rules: RuleSet) -> pd.DataFrame:
    """The value-set match columns for each row, computed on the distinct dx_codes."""
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
    """CTEs `complaints`, `complaint_matches` and `code_matches` over `source`'s distinct values."""
    env = rules.env()
    mentions = _columns(
        [(p.HAS_CUE, normalise.has_cue_sql(rules.text))]
        + [(n.match_column, n.match_sql(env)) for n in text_mentions(rules)]
    )
    affirmed = _columns([(n.match_column, n.match_sql(env)) for n in text_affirmations(rules)])
    clauses = normalise.normalised_sql(p.TEXT, rules.text)
    codes = _columns([(n.match_column, n.match_sql(env)) for n in code_matches(rules)])
    return f"""complaints AS (
    -- Each distinct complaint once (complaints repeat; the matches are joined back
    -- to the rows below): lower case, whether it holds a negation cue, and whether
    -- it mentions each phrase list, negated or not.
    SELECT
        chief_complaint,
        {p.TEXT},
{mentions}
    FROM (
        SELECT chief_complaint, {normalise.complaint_text_sql()} AS {p.TEXT}
        FROM (SELECT DISTINCT chief_complaint FROM {source})
    )
),
complaint_matches AS (
    -- Un-negated mentions: only complaints with a cue are normalised into words
    -- and clauses, and only those that also mention a phrase list look for it again
    -- with the negated mentions (cue to mention) cut out.
    SELECT
        *,
{affirmed}
    FROM (
        SELECT *, CASE WHEN {p.HAS_CUE} THEN {clauses} END AS {p.CLAUSES}
        FROM complaints
    )
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
