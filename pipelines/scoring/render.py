"""`python -m pipelines.scoring.render`: rewrite sql/features/ from the rules."""

from __future__ import annotations

from pipelines.scoring.duckdb_engine import SQL_PATH, render_sql
from pipelines.scoring.rules import load_rules


def main() -> None:
    SQL_PATH.parent.mkdir(parents=True, exist_ok=True)
    SQL_PATH.write_text(render_sql(load_rules()), encoding="utf-8")
    print(f"wrote {SQL_PATH}")


if __name__ == "__main__":
    main()
