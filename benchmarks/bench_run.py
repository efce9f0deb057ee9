"""End to end: `redflags run` from CSV at 1M and 10M intake rows, against the floor.

Each size gets the generator's CSV output (cached), a fresh warehouse, and the floor
(DuckDB copying the same files to Parquet with no logic) measured in the same run.
Targets (issue 7): 1M rows <= 30 s including Prefect's start; 10M rows <= 180 s and
<= 6x the floor; peak RSS at 10M <= 4 GB.
"""

from __future__ import annotations

import shutil
import sys

from benchmarks.harness import CACHE_DIR, Case, Result
from benchmarks.inputs import ensure_input, intake_rows, patients_for_rows

DEFAULT_SIZES = (1_000_000, 10_000_000)


def cases(options) -> list[Case]:
    result = []
    for size in options.rows or list(DEFAULT_SIZES):
        inputs = ensure_input(patients_for_rows(size), fmt="csv")
        n = intake_rows(inputs)
        work = CACHE_DIR / f"run-{size}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        targets = (
            {"wall_s": 30.0} if size <= 1_000_000 else {"wall_s": 180.0, "peak_rss_mb": 4096.0}
        )
        result.append(
            Case(
                f"floor {n:,}",
                [sys.executable, "-m", "benchmarks.floor", str(inputs), str(work / "floor")],
                rows=n,
                clean=(work / "floor",),
            )
        )
        argv = [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "--input",
            str(inputs),
            "--warehouse",
            str(work / "warehouse" / "warehouse.duckdb"),
        ]
        if options.engine:
            argv += ["--engine", options.engine[0]]
        # A fresh warehouse for every run: a second run into the same one finds every
        # file unchanged and skips it.
        clean = (work / "warehouse",)
        result.append(Case(f"redflags run {n:,}", argv, rows=n, targets=targets, clean=clean))
    return result


def derived(results: list[Result]) -> list[str]:
    """End-to-end time over the floor, per size (target <= 6x at 10M)."""
    floors = {r.rows: r for r in results if r.name.startswith("floor ")}
    lines = []
    for r in results:
        if r.name.startswith("redflags run ") and r.rows in floors:
            ratio = r.wall_s / floors[r.rows].wall_s
            note = " (target <= 6x)" if r.rows >= 5_000_000 else ""
            lines.append(f"- {r.name}: {ratio:.1f}x the floor{note}")
    return lines
