"""The predicate vocabulary of the rules: one pandas and one SQL translation each.

A rule in schemas/red_flags.yml is a tree of these nodes. Booleans are
three-valued in both engines: pandas' nullable "boolean" dtype follows Kleene
logic for &, | and ~, exactly as SQL's AND, OR and NOT do. Nothing may be added
to one engine only: a node is a class with both methods side by side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from pipelines.scoring.context import AFFIRMED, FLAG_BITS, HYPOTHETICAL, NEGATED
from pipelines.sqltext import literal

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BOOL = "boolean"
INT = "Int64"
AFFIRMED_BIT, NEGATED_BIT, HYPOTHETICAL_BIT = (
    FLAG_BITS[s] for s in (AFFIRMED, NEGATED, HYPOTHETICAL)
)


# numpy type of the values of each masked dtype `pick` handles (its array type is
# looked up when used, so that importing this module does not import pandas).
_MASKED = {"boolean": (bool, "BooleanArray"), "Int64": ("int64", "IntegerArray")}


def pick(condition: np.ndarray, if_true: pd.Series, otherwise: pd.Series) -> pd.Series:
    """`otherwise` with the rows where `condition` holds taken from `if_true`.

    Series.mask on nullable arrays indexes with boolean masks (several passes);
    for two boolean or two Int64 Series this is one np.where over values and
    NULL masks. Other dtypes (strings) use Series.mask.
    """
    import numpy as np
    import pandas as pd

    dtype = str(otherwise.dtype)
    if dtype not in _MASKED or str(if_true.dtype) != dtype:
        return otherwise.mask(condition, if_true)
    numpy_type, array_name = _MASKED[dtype]
    array_type = getattr(pd.arrays, array_name)
    values = np.where(
        condition,
        if_true.to_numpy(dtype=numpy_type, na_value=0),
        otherwise.to_numpy(dtype=numpy_type, na_value=0),
    )
    missing = np.where(condition, if_true.isna().to_numpy(), otherwise.isna().to_numpy())
    return pd.Series(array_type(values, missing), index=otherwise.index)


def true_only(values: pd.Series) -> np.ndarray:
    """TRUE rows of a boolean Series as a numpy mask (NULL is not TRUE)."""
    return values.to_numpy(dtype=bool, na_value=False)


@dataclass
class Env:
    """What nodes need besides the columns: patterns of codes."""

    code_patterns: dict[str, str]
    frame: pd.DataFrame | None = None

    def column(self, name: str) -> pd.Series:
        assert self.frame is not None
        return self.frame[name]


class Expr:
    """A node of a rule: evaluates to a Series (pandas) or renders to SQL."""

    def pandas(self, env: Env) -> pd.Series:
        raise NotImplementedError

    def sql(self, env: Env) -> str:
        raise NotImplementedError

    def columns(self) -> set[str]:
        """Columns the node reads, to check rules refer to what exists."""
        return set().union(*(c.columns() for c in self.children())) if self.children() else set()

    def children(self) -> list[Expr]:
        return []


@dataclass
class Column(Expr):
    name: str

    def pandas(self, env: Env) -> pd.Series:
        return env.column(self.name)

    def sql(self, env: Env) -> str:
        return self.name

    def columns(self) -> set[str]:
        return {self.name}


@dataclass
class Literal(Expr):
    value: bool | int | str | None

    def pandas(self, env: Env) -> pd.Series:
        import pandas as pd

        index = env.frame.index
        if isinstance(self.value, bool):
            return pd.Series(self.value, index=index, dtype=BOOL)
        if isinstance(self.value, int):
            return pd.Series(self.value, index=index, dtype=INT)
        if self.value is None:
            return pd.Series(pd.NA, index=index, dtype=BOOL)
        return pd.Series(self.value, index=index, dtype="string[pyarrow]")

    def sql(self, env: Env) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if self.value is None:
            return "NULL"
        if isinstance(self.value, int):
            return str(self.value)
        return literal(self.value)


@dataclass
class IsTrue(Expr):
    """TRUE when the argument is TRUE; NULL counts as not present."""

    arg: Expr

    def children(self) -> list[Expr]:
        return [self.arg]

    def pandas(self, env: Env) -> pd.Series:
        import pandas as pd

        value = self.arg.pandas(env).astype(BOOL)
        return pd.Series(true_only(value), index=value.index, dtype=BOOL)

    def sql(self, env: Env) -> str:
        return f"coalesce({self.arg.sql(env)}, false)"


@dataclass
class Compare(Expr):
    """gte / lte / eq: NULL when the left side is NULL."""

    op: str
    left: Expr
    right: Expr

    def children(self) -> list[Expr]:
        return [self.left, self.right]

    def pandas(self, env: Env) -> pd.Series:
        left, right = self.left.pandas(env), self.right.pandas(env)
        result = {">=": left >= right, "<=": left <= right, "=": left == right}[self.op]
        return result.astype(BOOL).mask(left.isna() | right.isna())

    def sql(self, env: Env) -> str:
        return f"({self.left.sql(env)} {self.op} {self.right.sql(env)})"


@dataclass
class Minus(Expr):
    left: Expr
    right: Expr

    def children(self) -> list[Expr]:
        return [self.left, self.right]

    def pandas(self, env: Env) -> pd.Series:
        return (self.left.pandas(env) - self.right.pandas(env)).astype(INT)

    def sql(self, env: Env) -> str:
        return f"({self.left.sql(env)} - {self.right.sql(env)})"


@dataclass
class In(Expr):
    """The column holds one of the values; NULL when the column is NULL."""

    arg: Expr
    values: tuple[str, ...]

    def children(self) -> list[Expr]:
        return [self.arg]

    def pandas(self, env: Env) -> pd.Series:
        value = self.arg.pandas(env)
        return value.isin(list(self.values)).astype(BOOL).mask(value.isna())

    def sql(self, env: Env) -> str:
        return f"({self.arg.sql(env)} IN ({', '.join(literal(v) for v in self.values)}))"


@dataclass
class Lookup(Expr):
    """A boolean per listed value; NULL for a value not listed (or NULL)."""

    arg: Expr
    values: dict[str, bool]

    def children(self) -> list[Expr]:
        return [self.arg]

    def pandas(self, env: Env) -> pd.Series:
        import pandas as pd

        value = self.arg.pandas(env)
        result = pd.Series(pd.NA, index=value.index, dtype=BOOL)
        for key, flag in self.values.items():
            flags = pd.Series(flag, index=value.index, dtype=BOOL)
            result = pick(true_only(value.eq(key)), flags, result)
        return result

    def sql(self, env: Env) -> str:
        whens = " ".join(
            f"WHEN {literal(k)} THEN {'true' if v else 'false'}" for k, v in self.values.items()
        )
        return f"(CASE {self.arg.sql(env)} {whens} END)"


@dataclass
class All(Expr):
    args: list[Expr]

    def children(self) -> list[Expr]:
        return self.args

    def pandas(self, env: Env) -> pd.Series:
        result = self.args[0].pandas(env).astype(BOOL)
        for arg in self.args[1:]:
            result = result & arg.pandas(env).astype(BOOL)
        return result

    def sql(self, env: Env) -> str:
        return "(" + " AND ".join(a.sql(env) for a in self.args) + ")"


@dataclass
class Any_(Expr):
    args: list[Expr]

    def children(self) -> list[Expr]:
        return self.args

    def pandas(self, env: Env) -> pd.Series:
        result = self.args[0].pandas(env).astype(BOOL)
        for arg in self.args[1:]:
            result = result | arg.pandas(env).astype(BOOL)
        return result

    def sql(self, env: Env) -> str:
        return "(" + " OR ".join(a.sql(env) for a in self.args) + ")"


@dataclass
class Not(Expr):
    arg: Expr

    def children(self) -> list[Expr]:
        return [self.arg]

    def pandas(self, env: Env) -> pd.Series:
        return ~self.arg.pandas(env).astype(BOOL)

    def sql(self, env: Env) -> str:
        return f"(NOT {self.arg.sql(env)})"


@dataclass
class WeightedCount(Expr):
    """Sum of the weights of the TRUE arguments (count_true: every weight 1).

    NULL counts as not present, so the result is never NULL.
    """

    args: list[Expr]
    weights: list[int]

    def children(self) -> list[Expr]:
        return self.args

    def pandas(self, env: Env) -> pd.Series:
        import numpy as np
        import pandas as pd

        total = np.zeros(len(env.frame), dtype=np.int64)
        for arg, weight in zip(self.args, self.weights, strict=True):
            total += true_only(arg.pandas(env).astype(BOOL)) * weight
        return pd.Series(total, index=env.frame.index, dtype=INT)

    def sql(self, env: Env) -> str:
        terms = " + ".join(
            f"(CASE WHEN {a.sql(env)} THEN {w} ELSE 0 END)"
            for a, w in zip(self.args, self.weights, strict=True)
        )
        return f"({terms})"


@dataclass
class CountKnown(Expr):
    """How many arguments are not NULL (for completeness)."""

    args: list[Expr]

    def children(self) -> list[Expr]:
        return self.args

    def pandas(self, env: Env) -> pd.Series:
        import pandas as pd

        total = pd.Series(0, index=env.frame.index, dtype=INT)
        for arg in self.args:
            total = total + arg.pandas(env).notna().astype(INT)
        return total

    def sql(self, env: Env) -> str:
        return (
            "(" + " + ".join(f"CAST({a.sql(env)} IS NOT NULL AS INTEGER)" for a in self.args) + ")"
        )


@dataclass
class Coalesce(Expr):
    args: list[Expr]

    def children(self) -> list[Expr]:
        return self.args

    def pandas(self, env: Env) -> pd.Series:
        result = self.args[0].pandas(env)
        for arg in self.args[1:]:
            result = pick(result.isna().to_numpy(), arg.pandas(env), result)
        return result

    def sql(self, env: Env) -> str:
        return "coalesce(" + ", ".join(a.sql(env) for a in self.args) + ")"


@dataclass
class When(Expr):
    """CASE: the value of the first condition that is TRUE (NULL is not TRUE)."""

    branches: list[tuple[Expr, Expr]]
    otherwise: Expr

    def children(self) -> list[Expr]:
        return [x for pair in self.branches for x in pair] + [self.otherwise]

    def pandas(self, env: Env) -> pd.Series:
        literals = [v.value for _, v in self.branches if isinstance(v, Literal)]
        if isinstance(self.otherwise, Literal) and len(literals) == len(self.branches):
            chosen = _literal_series([*literals, self.otherwise.value], self._first_true(env), env)
            if chosen is not None:
                return chosen
        result = self.otherwise.pandas(env)
        for condition, value in reversed(self.branches):
            hit = true_only(condition.pandas(env).astype(BOOL))
            result = pick(hit, value.pandas(env), result)
        return result

    def _first_true(self, env: Env) -> np.ndarray:
        """Per row, the position of the first branch whose condition is TRUE (else past the end)."""
        import numpy as np

        first = np.full(len(env.frame), len(self.branches))
        for position in reversed(range(len(self.branches))):
            first[true_only(self.branches[position][0].pandas(env).astype(BOOL))] = position
        return first

    def sql(self, env: Env) -> str:
        whens = " ".join(f"WHEN {c.sql(env)} THEN {v.sql(env)}" for c, v in self.branches)
        return f"(CASE {whens} ELSE {self.otherwise.sql(env)} END)"


def _literal_series(values: list, positions: np.ndarray, env: Env) -> pd.Series | None:
    """values[position] per row, typed as Literal.pandas types them; None if they mix types.

    A CASE whose branches are all literals (tier, pain_site, the effective flags)
    needs no Series per literal and no pass per branch: one take per row.
    """
    import numpy as np
    import pandas as pd

    index = env.frame.index
    if all(isinstance(v, str) for v in values):
        import pyarrow as pa

        taken = pa.array(values, pa.large_string()).take(pa.array(positions))
        return pd.Series(pd.array(taken, dtype="string[pyarrow]"), index=index)
    if all(isinstance(v, bool) or v is None for v in values):
        flags = np.array([bool(v) for v in values])[positions]
        missing = np.array([v is None for v in values])[positions]
        return pd.Series(pd.arrays.BooleanArray(flags, missing), index=index)
    return None


# The normalised codes the value-set matches read (built by pipelines/scoring/matches.py).
CODES = "codes"


def match_column_name(prefix: str, name: str) -> str:
    """A SQL-safe column name for a match of phrase list or value set `name`."""
    return f"{prefix}_{re.sub(r'[^a-z0-9_]', '_', name.lower())}"


class Match(Expr):
    """A node that reads the complaint text or the codes, not the row's other columns.

    Its value depends on one distinct text (or code string) only, so it is
    evaluated once per distinct value (`match_pandas` / `match_sql`, over a frame
    or relation of distinct values) and joined back to the rows, where the node
    reads its column (`pandas` / `sql`). pipelines/scoring/matches.py does this.
    """

    @property
    def match_column(self) -> str:
        raise NotImplementedError

    def match_pandas(self, env: Env) -> pd.Series:
        raise NotImplementedError

    def match_sql(self, env: Env) -> str:
        raise NotImplementedError

    def pandas(self, env: Env) -> pd.Series:
        return env.column(self.match_column)

    def sql(self, env: Env) -> str:
        return self.match_column


@dataclass
class InValueSet(Match):
    """A code of dx_codes is in the value set (never NULL: no codes, no match)."""

    value_set: str

    @property
    def match_column(self) -> str:
        return match_column_name("codes_in", self.value_set)

    def match_pandas(self, env: Env) -> pd.Series:
        pattern = env.code_patterns[self.value_set]
        return env.column(CODES).str.contains(pattern, regex=True).fillna(False).astype(BOOL)

    def match_sql(self, env: Env) -> str:
        return f"regexp_matches({CODES}, {literal(env.code_patterns[self.value_set])})"


# How a complaint reads a phrase list (pipelines/scoring/context.py `FLAG_BITS`):
# which of the statuses its mentions have. `text_status` is the effective reading:
# TRUE when a mention is affirmed, FALSE when none is and one is negated, else NULL.
READINGS = ("affirms", "negates", "hypothetical", "status")


@dataclass
class TextRead(Match):
    """How the complaint reads the phrase list (ConText: pipelines/scoring/context.py).

    All readings of one list share its flags column, computed once per distinct
    complaint by pipelines/scoring/matches.py: `affirms` (a mention is affirmed),
    `negates` (none is affirmed and one is negated), `hypothetical` (a mention is
    the clinician's hypothetical one, neither negated nor another person's) are
    never NULL; `status` is TRUE, FALSE or NULL as `affirms` / `negates` / neither.
    """

    phrases: str
    reading: str

    @property
    def match_column(self) -> str:
        return match_column_name("text", self.phrases)

    def pandas(self, env: Env) -> pd.Series:
        import pandas as pd

        flags = env.column(self.match_column).to_numpy(dtype="int8")
        affirmed, negated = (flags & AFFIRMED_BIT) != 0, (flags & NEGATED_BIT) != 0
        if self.reading == "status":
            return pd.Series(
                pd.arrays.BooleanArray(affirmed, ~affirmed & ~negated),
                index=env.frame.index,  # type: ignore[union-attr]
            )
        values = {
            "affirms": affirmed,
            "negates": ~affirmed & negated,
            "hypothetical": (flags & HYPOTHETICAL_BIT) != 0,
        }[self.reading]
        return pd.Series(values, index=env.frame.index, dtype=BOOL)  # type: ignore[union-attr]

    def sql(self, env: Env) -> str:
        c = self.match_column
        affirmed = f"({c} & {AFFIRMED_BIT}) <> 0"
        return {
            "affirms": f"({affirmed})",
            "negates": f"(({c} & {AFFIRMED_BIT | NEGATED_BIT}) = {NEGATED_BIT})",
            "hypothetical": f"(({c} & {HYPOTHETICAL_BIT}) <> 0)",
            "status": (
                f"(CASE WHEN {affirmed} THEN true WHEN ({c} & {NEGATED_BIT}) <> 0 THEN false END)"
            ),
        }[self.reading]


def substitute(expr: Expr, definitions: dict[str, Expr]) -> Expr:
    """`expr` with each column named in `definitions` replaced by its definition.

    A feature may read an earlier feature (`metastasis_pain` reads `thoracic_pain`);
    both engines compute the features of a row side by side, so the earlier
    feature's rule is written in place of its name.
    """
    if isinstance(expr, Column):
        return definitions.get(expr.name, expr)

    def swap(value: Any) -> Any:
        if isinstance(value, Expr):
            return substitute(value, definitions)
        if isinstance(value, list | tuple):
            return type(value)(swap(v) for v in value)
        return value

    return replace(expr, **{f.name: swap(getattr(expr, f.name)) for f in fields(expr)})


def parse(raw: Any, where: str) -> Expr:
    """Build a node from its YAML form; `where` names the rule for error messages."""
    if isinstance(raw, bool) or raw is None:
        return Literal(raw)
    if isinstance(raw, int):
        return Literal(raw)
    if isinstance(raw, str):
        return Column(raw)
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ValueError(f"{where}: expected a column, a literal or one predicate, got {raw!r}")
    ((name, arg),) = raw.items()
    if name in ("all", "any", "count_true", "count_known", "coalesce"):
        if not isinstance(arg, list) or not arg:
            raise ValueError(f"{where}: {name} takes a non-empty list")
        args = [parse(a, where) for a in arg]
        if name == "count_true":
            return WeightedCount(args, [1] * len(args))
        return {"all": All, "any": Any_, "count_known": CountKnown, "coalesce": Coalesce}[name](
            args
        )
    if name in ("not", "is_true"):
        return {"not": Not, "is_true": IsTrue}[name](parse(arg, where))
    if name in ("gte", "lte", "eq", "minus"):
        if not isinstance(arg, list) or len(arg) != 2:
            raise ValueError(f"{where}: {name} takes [left, right]")
        left = parse(arg[0], where)
        right = Literal(arg[1]) if name == "eq" else parse(arg[1], where)
        if name == "minus":
            return Minus(left, right)
        return Compare({"gte": ">=", "lte": "<=", "eq": "="}[name], left, right)
    if name == "in":
        return In(parse(arg[0], where), tuple(str(v) for v in arg[1]))
    if name == "lookup":
        return Lookup(Column(arg["column"]), {str(k): bool(v) for k, v in arg["values"].items()})
    if name == "in_value_set":
        return InValueSet(str(arg))
    if name.startswith("text_") and name[len("text_") :] in READINGS:
        return TextRead(str(arg), name[len("text_") :])
    raise ValueError(f"{where}: unknown predicate {name!r}")
