"""No spreadsheet formula leaves the pipeline, and no number loses its sign."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.outputs import csv_safe, csv_safe_select, csv_safe_text

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


def test_frame_text_columns_are_quoted_and_numbers_untouched():
    frame = pd.DataFrame(
        {
            "text": [t for t, _ in CASES],
            "mixed": [-1, "=1+1"] + [None] * (len(CASES) - 2),
            "number": [-1.5] * len(CASES),
            "=name": [-2] * len(CASES),
        }
    )
    safe = csv_safe(frame)
    assert list(safe.columns) == ["text", "mixed", "number", "'=name"]
    assert safe["text"].tolist() == [e for _, e in CASES]
    assert safe["mixed"].tolist()[:2] == [-1, "'=1+1"]
    assert safe["number"].tolist() == [-1.5] * len(CASES)
    assert safe["'=name"].tolist() == [-2] * len(CASES)
    # The frame given is left as it was.
    assert frame["text"].tolist() == [t for t, _ in CASES]


def test_arrow_backed_frame():
    table = pa.table({"id": ["=1", None, "E1"], "n": pa.array([-1, None, 3], pa.int64())})
    safe = csv_safe(table.to_pandas(types_mapper=pd.ArrowDtype))
    assert safe["id"].tolist()[0::2] == ["'=1", "E1"]
    assert pd.isna(safe["id"].tolist()[1])
    assert str(safe["id"].dtype) == str(table.to_pandas(types_mapper=pd.ArrowDtype)["id"].dtype)
    assert safe["n"].tolist()[0] == -1


def test_sql_form_agrees_with_the_pandas_form(tmp_path):
    con = duckdb.connect()
    con.register("cases", pa.table({"t": [t for t, _ in CASES], "n": [-5] * len(CASES)}))
    select = csv_safe_select(con, 'SELECT t, n, t AS "@x" FROM cases')
    rows = con.execute(select).fetchall()
    assert [r[0] for r in rows] == [e for _, e in CASES]
    assert {r[1] for r in rows} == {-5}
    assert [d[0] for d in con.execute(select).description] == ["t", "n", "'@x"]
