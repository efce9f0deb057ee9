"""Scoring benchmarks: both engines at 1M and 10M presentations, the baseline at 100k.

Each case runs `redflags score INPUT.parquet --out OUT.parquet --engine E` (or the
row-by-row baseline) in a fresh process; the harness records wall time, rows/s
and peak RSS. Targets (issue 4): DuckDB 10M < 60 s and < 4 GB; pandas within 3x
of DuckDB on 1M (compare the two rows of the results table); the engines at
least 100x faster than the baseline per row.

Inputs are made by the synthetic generator and cached under benchmarks/cache/
(benchmarks/inputs.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

from benchmarks.harness import CACHE_DIR, Case, Result
from benchmarks.inputs import ensure_input, patients_for_rows

DEFAULT_SIZES = (1_000_000, 10_000_000)
BASELINE_ROWS = 100_000


def input_file(rows: int) -> tuple[Path, int]:
    """The generator's intake (Parquet) of about `rows` presentations, and its row count."""
    path = ensure_input(patients_for_rows(rows), fmt="parquet") / "intake.parquet"
    n = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()[0]
    return path, n


def cases(options) -> list[Case]:
    sizes = options.rows or list(DEFAULT_SIZES)
    engines = options.engine or ["duckdb", "pandas"]
    result = []
    for size in sizes:
        path, n = input_file(size)
        for engine in engines:
            targets = {}
            if engine == "duckdb" and size >= 10_000_000:
                targets = {"wall_s": 60.0, "peak_rss_mb": 4096.0}
            out = CACHE_DIR / f"scored_{engine}_{size}.parquet"
            argv = [
                sys.executable,
                "-m",
                "pipelines.cli",
                "score",
                str(path),
                "--out",
                str(out),
                "--engine",
                engine,
            ]
            result.append(Case(f"score {engine} {n:,}", argv, rows=n, targets=targets))
    path, n = input_file(BASELINE_ROWS)
    result.append(
        Case(
            f"baseline row-by-row {n:,}",
            [sys.executable, "-m", "benchmarks.baseline_scoring", str(path)],
            rows=n,
        )
    )
    return result


def derived(results: list[Result]) -> list[str]:
    """Per-row speed of each engine over the row-by-row baseline (target >= 100x)."""
    baseline = next((r for r in results if r.name.startswith("baseline")), None)
    if baseline is None or not baseline.rows_per_s:
        return []
    return [
        f"- {r.name}: {r.rows_per_s / baseline.rows_per_s:.1f}x the baseline's rows/s "
        "(target >= 100x)"
        for r in results
        if r.name.startswith("score ")
    ]
