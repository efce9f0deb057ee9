"""The floor: DuckDB reads the same input files and writes as many Parquet rows, no logic.

`python -m benchmarks.floor INPUT_DIR OUT_DIR`. Whatever `redflags run` does beyond
this is the price of validation, scoring, cohorts and publishing; the benchmark
reports end-to-end time divided by this floor.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

TABLES = ("intake", "referrals", "diagnoses")


def copy_through(input_dir: Path, out_dir: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    rows = 0
    for table in TABLES:
        files = sorted(str(p) for p in input_dir.glob(f"{table}*"))
        if not files:
            continue
        reader = (
            f"read_parquet({files!r})"
            if files[0].endswith(".parquet")
            else f"read_csv({files!r}, header = true, all_varchar = true)"
        )
        target = out_dir / f"{table}.parquet"
        con.execute(f"COPY (SELECT * FROM {reader}) TO '{target}' (FORMAT parquet)")
        rows += con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0]
    return rows


if __name__ == "__main__":
    print(copy_through(Path(sys.argv[1]), Path(sys.argv[2])))
