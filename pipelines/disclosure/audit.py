"""The disclosure audit: what a reader of a whole release can work out about each hidden count.

A release publishes counts that hang together: strata partition a total, a stratum's
eligible and censored add up to its size in every window, a flag's stratum is the sum
of the patterns that hold the flag, a rule's TP + FP is a stratum's size, and so on.
`LinearSystem` holds those relations as linear equalities and inequalities over the
published cells (known values), the suppressed ones (unknown) and quantities never
published (unknown, such as a stratum's size). Counts are never negative.

For a suppressed cell, `ranges` solves two linear programmes (HiGHS, through scipy):
the smallest and the largest value it can take with everything published held fixed.
A reader with the release and arithmetic can narrow a cell no further than that. The
same goes for a count the release implies without publishing it (those not imaged,
n_eligible - n_events): it must not be pinned to 1..k-1 either. The linear relaxation
(counts as real numbers) gives a range at least as wide as the integer one; the
relations here have unit coefficients, whose vertices are integral, so the two agree.

The system splits into independent parts once the published values are substituted
(most suppressed cells are tied to a handful of others), so each programme is small.
Most cells are wide enough by far, and a range at least k wide needs no exact bounds:
two solutions k apart in the cell prove it. So a group's cells are first pushed apart
together, a few programmes for all of them, and only those no solution proves get
exact ranges (at 1M intake rows one group holds 15,000 expressions, of which about 80
need them). In a large group those come from the constraints near the cell when they
bound it no further than solutions already reach, else from the whole group.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Terms = dict[int, float]


@dataclass
class Constraint:
    terms: Terms
    rhs: float = 0.0
    equal: bool = True  # else sum(terms) <= rhs


@dataclass
class LinearSystem:
    """Variables (cells of the release and hidden quantities) and their relations."""

    keys: list[Hashable] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)  # None: unknown to a reader
    constraints: list[Constraint] = field(default_factory=list)
    index: dict[Hashable, int] = field(default_factory=dict)

    def variable(self, key: Hashable, value: float | None = None) -> int:
        """The variable of `key`, made on first use (with its value when published)."""
        if key not in self.index:
            self.index[key] = len(self.keys)
            self.keys.append(key)
            self.values.append(value)
        return self.index[key]

    def equal(self, terms: Terms, rhs: float = 0.0) -> None:
        self.constraints.append(Constraint(_clean(terms), rhs, True))

    def at_most(self, terms: Terms, rhs: float = 0.0) -> None:
        self.constraints.append(Constraint(_clean(terms), rhs, False))

    def hide(self, variable: int) -> None:
        self.values[variable] = None

    def is_known(self, variable: int) -> bool:
        return self.values[variable] is not None


def _clean(terms: Terms) -> Terms:
    out: Terms = {}
    for variable, coefficient in terms.items():
        out[variable] = out.get(variable, 0.0) + coefficient
    return {v: c for v, c in out.items() if c != 0.0}


def total(*variables: int) -> Terms:
    """Terms of a sum of variables."""
    terms: Terms = {}
    for variable in variables:
        terms[variable] = terms.get(variable, 0.0) + 1.0
    return terms


def minus(terms: Terms, other: Terms) -> Terms:
    out = dict(terms)
    for variable, coefficient in other.items():
        out[variable] = out.get(variable, 0.0) - coefficient
    return out


@dataclass(frozen=True)
class Range:
    low: float
    high: float  # inf when nothing bounds it

    @property
    def width(self) -> float:
        return self.high - self.low


class _Reduced:
    """The constraints with what a reader knows substituted, grouped by the unknowns they
    tie together.

    What a reader knows is the published values and everything they fix: an equality
    left with one unknown gives that unknown's value, which may leave another equality
    with one, and so on (a stratum's size from any row's eligible + censored, a part
    from its total and the other parts). The rest is grouped by the unknowns each
    constraint ties (union-find), so each programme is over one small group.
    """

    def __init__(self, system: LinearSystem) -> None:
        self.system = system
        self.values: list[float | None] = list(system.values)
        rows = [dict(c.terms) for c in system.constraints]
        rhs = [c.rhs for c in system.constraints]
        unknown: list[set[int]] = []
        uses: dict[int, list[int]] = {}
        for number, terms in enumerate(rows):
            missing = set()
            for variable, coefficient in terms.items():
                value = self.values[variable]
                if value is None:
                    missing.add(variable)
                    uses.setdefault(variable, []).append(number)
                else:
                    rhs[number] -= coefficient * value
            unknown.append(missing)
        equal = [c.equal for c in system.constraints]
        # the constraint that fixed each derived value (what a cover must break)
        self.reason: dict[int, int] = {}
        queue = [n for n in range(len(rows)) if equal[n] and len(unknown[n]) == 1]
        while queue:
            number = queue.pop()
            if len(unknown[number]) != 1:
                continue
            (variable,) = unknown[number]
            value = rhs[number] / rows[number][variable]
            if value < -1e-6:
                raise ValueError(
                    f"the published counts contradict their relations ({system.keys[variable]} "
                    f"would be {value:g})"
                )
            self.values[variable] = value
            self.reason[variable] = number
            for other in uses.get(variable, []):
                rhs[other] -= rows[other][variable] * value
                unknown[other].discard(variable)
                if equal[other] and len(unknown[other]) == 1:
                    queue.append(other)
        self.rows: list[tuple[Terms, float, bool]] = []
        self.origin: list[int] = []  # the constraint each row of `rows` comes from
        # per expression solved: the constraints that bound its extremes
        self.binding: dict[int, tuple[int, ...]] = {}
        parent: dict[int, int] = {}

        def find(v: int) -> int:
            while parent.setdefault(v, v) != v:
                parent[v] = parent[parent[v]]
                v = parent[v]
            return v

        for number, missing in enumerate(unknown):
            if not missing:
                continue
            self.rows.append(({v: rows[number][v] for v in missing}, rhs[number], equal[number]))
            self.origin.append(number)
            first, *rest = missing
            for other in rest:
                parent[find(other)] = find(first)
        self.find = find
        self.by_part: dict[int, list[int]] = {}
        for number, (terms, _, _) in enumerate(self.rows):
            self.by_part.setdefault(find(next(iter(terms))), []).append(number)

    def split(self, objective: Terms) -> tuple[float, Terms]:
        """The expression as a constant (what is known) plus terms over unknowns."""
        constant = 0.0
        unknown: Terms = {}
        for variable, coefficient in objective.items():
            value = self.values[variable]
            if value is None:
                unknown[variable] = coefficient
            else:
                constant += coefficient * value
        return constant, unknown

    def part_of(self, unknown: Terms) -> frozenset[int]:
        return frozenset(self.find(v) for v in unknown)

    def support(self, expression: Terms, binding: Iterable[int] = ()) -> set[int]:
        """The published variables that what a reader knows of `expression` rests on:
        its own published variables, those of the constraints that fixed its derived
        ones, and those of the constraints that bound its extremes (`binding`), each
        derived one followed back to the constraint that fixed it."""
        published: set[int] = set()
        seen: set[int] = set()
        stack = list(expression)
        for number in binding:
            stack.extend(self.system.constraints[number].terms)
        while stack:
            variable = stack.pop()
            if variable in seen:
                continue
            seen.add(variable)
            if self.system.values[variable] is not None:
                published.add(variable)
            elif variable in self.reason:
                stack.extend(self.system.constraints[self.reason[variable]].terms)
        return published

    def neighbours(self, expression: Terms) -> set[int]:
        """The published variables of every constraint of the expression's group, and
        those the group's derived values rest on."""
        _, unknown = self.split(expression)
        variables: set[int] = set(expression)
        for part in self.part_of(unknown):
            for row in self.by_part.get(part, []):
                variables |= set(self.system.constraints[self.origin[row]].terms)
        return self.support(variables)


class _Programme:
    """One group's constraints as a linear programme (HiGHS, through scipy), solved for
    one objective after another."""

    def __init__(self, reduced: _Reduced, parts: frozenset[int]) -> None:
        from scipy.sparse import csr_matrix

        numbers = [r for part in parts for r in reduced.by_part.get(part, [])]
        variables = sorted({v for r in numbers for v in reduced.rows[r][0]})
        self.column = {v: i for i, v in enumerate(variables)}
        self.n = len(variables)
        self.parts: dict[bool, tuple[Any, np.ndarray, list[int]]] = {}
        for equal in (True, False):
            chosen = [r for r in numbers if reduced.rows[r][2] == equal]
            data, row_index, col_index = [], [], []
            for i, r in enumerate(chosen):
                for v, coefficient in reduced.rows[r][0].items():
                    data.append(coefficient)
                    row_index.append(i)
                    col_index.append(self.column[v])
            matrix = (
                csr_matrix((data, (row_index, col_index)), shape=(len(chosen), self.n))
                if chosen
                else None
            )
            rhs = np.array([reduced.rows[r][1] for r in chosen])
            self.parts[equal] = (matrix, rhs, [reduced.origin[r] for r in chosen])
        self.last: Any = None
        # the same draws every time, so that a release is audited the same way
        self.random = np.random.default_rng(0)
        self.rows = [reduced.rows[r] for r in numbers]
        self.origin = [reduced.origin[r] for r in numbers]
        self.uses: dict[int, list[int]] = {}
        for number, (terms, _, _) in enumerate(self.rows):
            for v in terms:
                self.uses.setdefault(v, []).append(number)

    def binding(self) -> list[int]:
        """The constraints (numbers in the system) that hold the last solution where it is:
        those with a non-zero dual value."""
        found = []
        for equal, marginals in ((True, self.last.eqlin), (False, self.last.ineqlin)):
            origins = self.parts[equal][2]
            if origins:
                found += [origins[i] for i, d in enumerate(marginals.marginals) if abs(d) > 1e-9]
        return found

    def extreme(self, terms: Terms, maximise: bool, *, by_column: bool = False) -> float:
        """The least (or greatest) value of the expression; `by_column` when its terms are
        keyed by the programme's columns rather than the system's variables."""
        cost = np.zeros(self.n)
        for v, coefficient in terms.items():
            cost[v if by_column else self.column[v]] = -coefficient if maximise else coefficient
        self._solve(cost)
        if self.last.status == 0:
            return float(-self.last.fun if maximise else self.last.fun)
        if self.last.status == 3:  # unbounded
            return np.inf if maximise else -np.inf
        raise ValueError(f"the published counts contradict their relations ({self.last.message})")

    def push(self, weights: Any, caps: np.ndarray, up: bool) -> bool:
        """A solution with each expression (a row of `weights`, by column) moved as far as
        its cap allows, up (each at most its cap) or down (each at least it): the
        constraints with the caps added, so every solution is one of the group's. The
        caps must hold at a known solution; False when HiGHS finds none all the same."""
        from scipy.sparse import vstack

        sign = 1.0 if up else -1.0
        rows = sign * weights
        a_ub, b_ub, _ = self.parts[False]
        extra_a = rows if a_ub is None else vstack([a_ub, rows]).tocsr()
        extra_b = sign * caps if a_ub is None else np.concatenate([b_ub, sign * caps])
        # unequal weights, so that moving a count from one expression to another of
        # the same total still changes the objective
        weights_ = self.random.uniform(1.0, 2.0, weights.shape[0])
        self._solve(-(rows.T @ weights_), extra_a, extra_b)
        return self.last.status == 0

    def _solve(self, cost: np.ndarray, a_ub: Any = None, b_ub: Any = None) -> None:
        from scipy.optimize import linprog

        (a_eq, b_eq, _), (own_a, own_b, _) = self.parts[True], self.parts[False]
        if a_ub is None:
            a_ub, b_ub = own_a, own_b
        self.last = linprog(
            cost, A_ub=a_ub, b_ub=b_ub if a_ub is not None else None, A_eq=a_eq,
            b_eq=b_eq if a_eq is not None else None, bounds=(0, None), method="highs",
        )  # fmt: skip

    def nearby(self, terms: Terms, low: float, high: float) -> tuple[int, ...] | None:
        """The constraints that pin the expression to [`low`, `high`] (both seen in
        solutions of the group), found without the whole group: the constraints near its
        variables alone, the rest dropped, allow it at least the range the group does. So
        when their least and greatest values are `low` and `high`, those are its exact range,
        and the constraints with non-zero dual values bind it there. None when the
        constraints a few steps away do not pin it that far."""
        from scipy.optimize import linprog
        from scipy.sparse import csr_matrix

        chosen: set[int] = set()
        frontier = set(terms)
        seen_variables = set(terms)
        for _ in range(NEARBY_STEPS):
            new_rows = {r for v in frontier for r in self.uses.get(v, [])} - chosen
            if not new_rows or len(chosen) + len(new_rows) > NEARBY_ROWS:
                break
            chosen |= new_rows
            frontier = {v for r in new_rows for v in self.rows[r][0]} - seen_variables
            seen_variables |= frontier
            numbers = sorted(chosen)
            variables = sorted({v for r in numbers for v in self.rows[r][0]})
            column = {v: i for i, v in enumerate(variables)}
            blocks = {}
            for equal in (True, False):
                rows = [r for r in numbers if self.rows[r][2] == equal]
                data = [c for r in rows for c in self.rows[r][0].values()]
                row_index = [i for i, r in enumerate(rows) for _ in self.rows[r][0]]
                col_index = [column[v] for r in rows for v in self.rows[r][0]]
                matrix = csr_matrix((data, (row_index, col_index)), shape=(len(rows), len(column)))
                rhs = np.array([self.rows[r][1] for r in rows])
                blocks[equal] = (matrix, rhs, rows) if rows else (None, None, rows)
            cost = np.zeros(len(column))
            for v, coefficient in terms.items():
                cost[column[v]] = coefficient
            binding: set[int] = set()
            extremes = []
            for sign in (-1.0, 1.0):
                found = linprog(
                    sign * cost, A_ub=blocks[False][0], b_ub=blocks[False][1],
                    A_eq=blocks[True][0], b_eq=blocks[True][1], bounds=(0, None),
                    method="highs",
                )  # fmt: skip
                if found.status != 0:
                    break
                extremes.append(sign * found.fun)
                for equal, marginals in ((True, found.eqlin), (False, found.ineqlin)):
                    rows = blocks[equal][2]
                    binding |= {
                        self.origin[rows[i]]
                        for i, d in enumerate(marginals.marginals)
                        if abs(d) > 1e-9
                    }
            if (
                len(extremes) == 2
                and abs(extremes[0] - high) <= 1e-6
                and abs(extremes[1] - low) <= 1e-6
            ):
                return tuple(sorted(binding))
        return None


Extremes = dict[tuple, tuple[float, float, tuple[int, ...]]]
# How far `_Programme.nearby` looks for what pins an expression: steps from its
# variables through the constraints, and the most constraints it takes.
NEARBY_STEPS = 4
NEARBY_ROWS = 400
# Constraints a group needs before looking nearby pays: up to 2 * NEARBY_STEPS small
# programmes against two of the whole group (on the sample a group of 2,000
# constraints solves in 20 ms, at 1M intake rows one of 13,000 in 0.5-1.5 s).
NEARBY_WORTH = 5_000


def ranges(
    system: LinearSystem,
    objectives: Iterable[Terms],
    cache: Extremes | None = None,
    enough: float = math.inf,
) -> tuple[list[Range], _Reduced]:
    """The range of each expression, given everything the release publishes: the
    expressions of one group are solved on one model, one after another.

    An expression whose range is at least `enough` wide needs no exact range: two
    solutions of the group's constraints that differ by `enough` in it prove it, and its
    range is reported as the span of the solutions seen (a lower bound of its width).
    The solutions come from minimising and maximising the sum of the group's
    expressions, from pushing the ones still narrower apart (`_solve_group`), and from
    the exact programmes solved for the others. Only the expressions no solution proves
    get exact ranges, so whether each is protected is decided as if all were exact.
    `cache` keeps the ranges by group and expression, so that a later audit of the same
    release with a few more cells hidden solves again only the groups those cells
    changed."""
    cache = {} if cache is None else cache
    reduced = _Reduced(system)
    objectives = list(objectives)
    found: list[Range | None] = [None] * len(objectives)
    by_parts: dict[frozenset[int], list[tuple[int, float, Terms]]] = {}
    for number, objective in enumerate(objectives):
        constant, unknown = reduced.split(objective)
        if not unknown:
            found[number] = Range(round(constant, 6), round(constant, 6))
        else:
            by_parts.setdefault(reduced.part_of(unknown), []).append((number, constant, unknown))
    for parts, members in by_parts.items():
        group = _group_key(reduced, parts)
        pending = {}
        for _, _, unknown in members:
            key = (group, tuple(sorted(unknown.items())))
            if key not in cache:
                pending[key] = unknown
        if pending:
            _solve_group(_Programme(reduced, parts), pending, cache, enough)
        for number, constant, unknown in members:
            low, high, binding = cache[(group, tuple(sorted(unknown.items())))]
            found[number] = Range(float(round(constant + low, 6)), float(round(constant + high, 6)))
            reduced.binding[number] = binding
    return found, reduced  # type: ignore[return-value]


def _group_key(reduced: _Reduced, parts: frozenset[int]) -> str:
    rows = sorted(
        (tuple(sorted(terms.items())), round(rhs, 6), equal)
        for part in parts
        for terms, rhs, equal in (reduced.rows[r] for r in reduced.by_part.get(part, []))
    )
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _solve_group(
    programme: _Programme, pending: dict[tuple, Terms], cache: Extremes, enough: float
) -> None:
    """Ranges of the group's pending expressions into `cache`: witnessed by solutions
    where that suffices, exact (with the constraints that bind them) otherwise."""
    keys = list(pending)
    from scipy.sparse import csr_matrix

    data, rows, columns = [], [], []
    for row, key in enumerate(keys):
        for v, coefficient in pending[key].items():
            data.append(coefficient)
            rows.append(row)
            columns.append(programme.column[v])
    weights = csr_matrix((data, (rows, columns)), shape=(len(keys), programme.n))
    low = np.full(len(keys), np.inf)
    high = np.full(len(keys), -np.inf)

    def seen() -> None:
        values = weights @ programme.last.x
        np.minimum(low, values, out=low)
        np.maximum(high, values, out=high)

    # Push the expressions not yet witnessed wide enough down together, then up.
    open_ = np.ones(len(keys), dtype=bool)
    if np.isfinite(enough) and len(keys) > 2:
        combined = dict(enumerate(np.asarray(weights.sum(axis=0)).ravel()))
        for maximise in (False, True):
            if np.isfinite(programme.extreme(combined, maximise, by_column=True)):
                seen()
        open_ = high - low < enough - 1e-9
    # Then push the open ones apart, each by at most `enough` from the least (or the
    # greatest) value seen: capped, a solution moves many expressions a little rather
    # than a few a lot, and with unequal weights a count moves between expressions of
    # the same total. Two up for one down: most open expressions are counts seen at 0.
    # Until two passes in a row prove fewer than two (a pass costs one programme, an
    # expression left open two).
    passes = idle = 0
    while np.isfinite(enough) and np.isfinite(low).all() and open_.sum() > 2 and idle < 2:
        rows = np.flatnonzero(open_)
        up = passes % 3 != 2
        caps = low[rows] + enough if up else high[rows] - enough
        if not programme.push(weights[rows], caps, up):
            break
        seen()
        passes += 1
        still = open_ & (high - low < enough - 1e-9)
        idle = idle + 1 if open_.sum() - still.sum() < 2 else 0
        open_ = still
    for row, key in enumerate(keys):
        if high[row] - low[row] >= enough - 1e-9:
            cache[key] = (float(low[row]), float(high[row]), ())
            continue
        near = (
            programme.nearby(pending[key], float(low[row]), float(high[row]))
            if len(programme.rows) > NEARBY_WORTH
            else None
        )
        if near is not None:
            cache[key] = (float(low[row]), float(high[row]), near)
            continue
        # the greatest value first: with the least seen so far it may be wide enough
        greatest = programme.extreme(pending[key], maximise=True)
        binding = []
        if np.isfinite(greatest):
            binding += programme.binding()
            seen()
        # (no solution seen yet: the least is not known, so it is solved below)
        if np.isfinite(low[row]) and greatest - low[row] >= enough - 1e-9:
            cache[key] = (float(low[row]), greatest, ())
            continue
        least = programme.extreme(pending[key], maximise=False)
        if np.isfinite(least):
            binding += programme.binding()
            seen()
        cache[key] = (least, greatest, tuple(sorted(set(binding))))


def is_protected(found: Range, min_cell: int, *, suppressed: bool) -> bool:
    """Whether a reader is kept from the count: a suppressed cell needs a range at least
    `min_cell` wide, unless it can only be 0 (a count that is 0 by the relations alone,
    such as those below the lowest tier threshold, names nobody); a count implied but
    not published must not be known to lie in 1..min_cell-1."""
    if found.width >= min_cell - 1e-9 or found.high <= 1e-9:
        return True
    if suppressed:
        return False
    return found.low >= min_cell - 1e-9
