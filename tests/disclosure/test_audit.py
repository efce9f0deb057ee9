"""The disclosure audit's ranges on tables small enough to work out by hand."""

from __future__ import annotations

import pytest

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
