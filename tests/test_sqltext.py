"""SQL text is quoted by one helper (pipelines/sqltext.py) or takes parameters."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import duckdb
import pytest

from pipelines.contracts import ContractError, read_contract
from pipelines.sqltext import identifier, literal
from pipelines.sqltext import path as sql_path
from pipelines.warehouse import writer
from tests.support import ROOT

# Words that make an f-string SQL text rather than a message.
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|CREATE|COPY|ATTACH|DELETE|UPDATE|WHERE|FROM|SET)\b")


def hand_quoted(tree: ast.AST) -> list[int]:
    """Lines of SQL f-strings that put a value between quotes themselves: `'{value}'`."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.JoinedStr):
            continue
        text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
        if not SQL_WORDS.search(text):
            continue
        for before, value in zip(node.values, node.values[1:], strict=False):
            if (
                isinstance(before, ast.Constant)
                and isinstance(value, ast.FormattedValue)
                and before.value.endswith(("'", '"'))
            ):
                lines.append(node.lineno)
    return lines


def test_no_sql_quotes_a_value_by_hand():
    found = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / "pipelines").rglob("*.py"))
        if (lines := hand_quoted(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert found == {}


def test_the_check_sees_a_value_quoted_by_hand():
    spliced = ast.parse("""f"SELECT * FROM t WHERE name = '{name}'" """)
    quoted = ast.parse("""f"SELECT * FROM t WHERE name = {literal(name)}" """)
    assert (hand_quoted(spliced), hand_quoted(quoted)) == ([1], [])


HOSTILE = "x' || (SELECT content FROM read_text('/etc/passwd')) || '\" OR 1=1 --"


def test_quoted_values_stay_values():
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({identifier(HOSTILE)} VARCHAR)")
    con.execute(f"INSERT INTO t VALUES ({literal(HOSTILE)})")
    assert con.execute(f"SELECT {identifier(HOSTILE)} FROM t").fetchall() == [(HOSTILE,)]
    assert con.execute("SELECT column_name FROM information_schema.columns").fetchall() == [
        (HOSTILE,)
    ]
    assert con.execute(f"SELECT {sql_path(Path('/tmp') / HOSTILE)}").fetchall() == [
        ("/tmp/" + HOSTILE,)
    ]


def test_a_hostile_memory_limit_is_a_value_not_sql(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hostile = "1GB'; COPY (SELECT 42) TO 'pwned.csv'; SELECT '"
    with (
        pytest.raises(duckdb.Error, match="Unknown unit for memory"),
        writer(tmp_path / "w.duckdb", 1.0, memory_limit=hostile),
    ):
        pass
    assert not (tmp_path / "pwned.csv").exists()


def test_a_site_contract_cannot_name_a_column_in_sql(tmp_path: Path):
    (tmp_path / "intake.yml").write_text(
        "table: intake\ncolumns:\n"
        "  - name: 'x VARCHAR); COPY (SELECT 42) TO ''pwned.csv''; --'\n    type: string\n",
        encoding="utf-8",
    )
    with pytest.raises(ContractError, match=r"intake\.yml: column name .* must be snake_case"):
        read_contract("intake", tmp_path / "intake.yml")
