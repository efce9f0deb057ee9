"""The disclosure audit's ranges on tables small enough to work out by hand."""

from __future__ import annotations

import pytest

from pipelines.disclosure import audit
from pipelines.disclosure.audit import LinearSystem, Range, is_protected, minus, ranges, total


def two_by_two(hidden: set[str]) -> tuple[LinearSystem, dict[str, int]]:
    """A 2x2 table with its margins: a=3 b=20 / c=30 d=40; rows 23, 70; columns 33, 60;
    total 93. Cells in `hidden` are suppressed, everything else published."""
    values = {"a": 3, "b": 20, "c": 30, "d": 40, "r1": 23, "r2": 70, "c1": 33, "c2": 60, "t": 93}
    system = LinearSystem()
    v = {k: system.variable(k, None if k in hidden else float(n)) for k, n in values.items()}
    for parts, whole in ((("a", "b"), "r1"), (("c", "d"), "r2"), (("a", "c"), "c1"),
                         (("b", "d"), "c2"), (("r1", "r2"), "t")):  # fmt: skip
        system.equal(minus(total(*(v[p] for p in parts)), total(v[whole])))
    return system, v


def test_one_hidden_cell_is_given_away_by_its_margin():
    system, v = two_by_two({"a"})
    (found,), _ = ranges(system, [total(v["a"])])
    assert found == Range(3, 3)


def test_four_hidden_cells_range_as_the_margins_allow():
    # a = 23 - b, c = 33 - a, d = 60 - b = 70 - c: a in [max(0, 23-60, 33-70), min(23, 33)]
    system, v = two_by_two({"a", "b", "c", "d"})
    found, _ = ranges(system, [total(v[x]) for x in "abcd"])
    assert found == [Range(0, 23), Range(0, 23), Range(10, 33), Range(37, 60)]
    assert all(is_protected(r, 11, suppressed=True) for r in found)
    # under k = 25 the same ranges are too narrow
    assert not is_protected(found[0], 25, suppressed=True)


def test_witnessed_ranges_are_at_least_as_wide_as_asked_and_within_the_exact_ones():
    system, v = two_by_two({"a", "b", "c", "d"})
    exact, _ = ranges(system, [total(v[x]) for x in "abcd"])
    witnessed, _ = ranges(system, [total(v[x]) for x in "abcd"], enough=11)
    for e, w in zip(exact, witnessed, strict=True):
        assert e.low - 1e-9 <= w.low and w.high <= e.high + 1e-9
        assert w.width >= 11 - 1e-9


def test_hidden_margins_do_not_help_when_the_total_pins_them():
    # a, b and r1 hidden: r1 = 93 - 70 = 23 again, and a + b = 23 with a = 33 - 30 = 3
    system, v = two_by_two({"a", "b", "r1"})
    found, _ = ranges(system, [total(v["a"]), total(v["b"]), total(v["r1"])])
    assert found == [Range(3, 3), Range(20, 20), Range(23, 23)]


def test_an_implied_count_must_not_be_known_to_be_small():
    # eligible 15 published, events hidden but 12..15 (at most 3 not imaged): the count
    # not imaged, 15 - events, lies in 0..3 -> pinned under k
    system = LinearSystem()
    eligible = system.variable("e", 15.0)
    events = system.variable("v", None)
    other = system.variable("o", None)
    system.at_most(minus(total(events), total(eligible)))
    system.equal(minus(total(events, other), {}), 15.0)  # events + other = 15
    system.at_most(total(other), 3.0)
    (found,), _ = ranges(system, [minus(total(eligible), total(events))])
    assert found == Range(0, 3)
    assert not is_protected(found, 11, suppressed=False)
    # a count known to be 0, or known to be k or more, gives nobody away
    assert is_protected(Range(0, 0), 11, suppressed=False)
    assert is_protected(Range(11, 12), 11, suppressed=False)


def test_a_suppressed_cell_the_relations_make_zero_names_nobody():
    # below the lowest tier threshold nobody is negative: fn = tn = 0 whatever the
    # counts, so hiding more cannot widen them, and they disclose nobody
    assert is_protected(Range(0, 0), 11, suppressed=True)
    assert not is_protected(Range(0, 3), 11, suppressed=True)
    assert not is_protected(Range(12, 14), 11, suppressed=True)


def test_contradictory_counts_are_an_error():
    system = LinearSystem()
    a = system.variable("a", 5.0)
    b = system.variable("b", None)
    system.equal(minus(total(a, b), {}), 3.0)  # a + b = 3 with a = 5 and b >= 0
    with pytest.raises(ValueError, match="contradict"):
        ranges(system, [total(b)])


def three_by_four(hidden: set[tuple[int, int]]) -> tuple[LinearSystem, dict]:
    """A 3x4 table with its margins published: rows 8, 40, 60; columns 5, 30, 33, 40;
    total 108. Cells in `hidden` ((row, column), from 0) are suppressed."""
    cells = [[2, 2, 2, 2], [1, 10, 14, 15], [2, 18, 17, 23]]
    system = LinearSystem()
    v = {
        (i, j): system.variable(("cell", i, j), None if (i, j) in hidden else float(n))
        for i, row in enumerate(cells)
        for j, n in enumerate(row)
    }
    for i, row in enumerate(cells):
        margin = system.variable(("row", i), float(sum(row)))
        system.equal(minus(total(*(v[i, j] for j in range(4))), total(margin)))
    for j in range(4):
        margin = system.variable(("column", j), float(sum(row[j] for row in cells)))
        system.equal(minus(total(*(v[i, j] for i in range(3))), total(margin)))
    return system, v


def frechet(i: int, j: int) -> Range:
    """A cell's range in a two-way table of which only the margins are known (the
    Fréchet bounds): max(0, row + column - total) .. min(row, column)."""
    rows, columns, grand = (8, 40, 60), (5, 30, 33, 40), 108
    return Range(max(0, rows[i] + columns[j] - grand), min(rows[i], columns[j]))


def test_every_cell_hidden_ranges_as_the_frechet_bounds():
    # the first row (8) and the first column (5) hold each of their cells under 11
    everything = {(i, j) for i in range(3) for j in range(4)}
    system, v = three_by_four(everything)
    exact, _ = ranges(system, [total(v[c]) for c in sorted(everything)])
    assert exact == [frechet(i, j) for i, j in sorted(everything)]
    assert [c for c, r in zip(sorted(everything), exact, strict=True) if r.width >= 11] == [
        (1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "hidden",
    [
        {(i, j) for i in range(3) for j in range(4)},
        {(i, j) for i in (1, 2) for j in range(4)},  # the first row published
        {(i, j) for i in range(3) for j in (1, 2, 3)},  # the first column published
        {(0, 0), (0, 1), (1, 0), (1, 1)},
        {(1, 1), (1, 2), (2, 1), (2, 2)},
    ],
)
@pytest.mark.parametrize("nearby", [False, True])
def test_the_fast_path_and_the_exact_programmes_agree_on_what_is_protected(
    hidden, nearby, monkeypatch
):
    system, v = three_by_four(hidden)
    expressions = [total(v[c]) for c in sorted(hidden)]
    exact, _ = ranges(system, expressions)
    nearby_found = []
    if nearby:  # narrow ranges from the constraints near each cell, as in large groups
        monkeypatch.setattr(audit, "NEARBY_WORTH", 0)
        near = audit._Programme.nearby
        monkeypatch.setattr(
            audit._Programme,
            "nearby",
            lambda self, *a: nearby_found.append(near(self, *a)) or nearby_found[-1],
        )
    pushes = []
    push = audit._Programme.push
    monkeypatch.setattr(
        audit._Programme, "push", lambda self, *a: pushes.append(1) or push(self, *a)
    )
    fast, _ = ranges(system, expressions, enough=11)
    for e, f in zip(exact, fast, strict=True):
        assert is_protected(f, 11, suppressed=True) == is_protected(e, 11, suppressed=True)
        assert e.low - 1e-9 <= f.low and f.high <= e.high + 1e-9  # seen in a solution
        if e.width < 11:  # not protected: exact, whichever way it was found
            assert f == e
    if len(hidden) == 12:
        assert pushes  # the capped pushes ran, so they are what this checks
    if nearby and any(e.width < 11 for e in exact):
        assert any(found is not None for found in nearby_found)  # and they were used


def test_a_cell_proven_by_two_solutions_is_protected_by_its_exact_range():
    # the cells the fast path reports wide enough without their exact programmes (no
    # binding constraints: no least value solved) have exact ranges, the Fréchet bounds
    # worked out apart from the programmes, at least 11 wide
    everything = {(i, j) for i in range(3) for j in range(4)}
    system, v = three_by_four(everything)
    cells = sorted(everything)
    fast, reduced = ranges(system, [total(v[c]) for c in cells], enough=11)
    proven = [c for n, (c, f) in enumerate(zip(cells, fast, strict=True))
              if f.width >= 11 and not reduced.binding[n]]  # fmt: skip
    assert len(proven) == 6
    for (i, j), found in zip(cells, fast, strict=True):
        if (i, j) in proven:
            assert frechet(i, j).width >= 11
            assert frechet(i, j).low <= found.low and found.high <= frechet(i, j).high
