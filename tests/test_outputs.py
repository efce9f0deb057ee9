"""No spreadsheet formula leaves the pipeline, and no number loses its sign."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from pipelines.outputs import csv_safe_select, csv_safe_text

CASES = [
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("+44 20 7946 0958", "'+44 20 7946 0958"),
    ("-ve SLR", "'-ve SLR"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("＝1+1", "'＝1+1"),
    ("-5", "-5"),
    ("+3.5", "+3.5"),
    ("-1e-3", "-1e-3"),
    ("-1+1", "'-1+1"),
    ("back pain", "back pain"),
    ("a=b", "a=b"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_one_value(text: str, expected: str):
    assert csv_safe_text(text) == expected


def test_sql_form_agrees_with_the_one_value_form():
    con = duckdb.connect()
    con.register("cases", pa.table({"t": [t for t, _ in CASES], "n": [-5] * len(CASES)}))
    select = csv_safe_select(con, 'SELECT t, n, t AS "@x" FROM cases')
    rows = con.execute(select).fetchall()
    assert [r[0] for r in rows] == [e for _, e in CASES]
    assert {r[1] for r in rows} == {-5}
    assert [d[0] for d in con.execute(select).description] == ["t", "n", "'@x"]
