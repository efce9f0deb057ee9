"""`redflags generate`: 1,000,000 patients (several million intake rows) as CSV.

Targets from issue 2: under 60 s wall time and under 2 GB peak memory on the
2-core machine. `--rows N` replaces the population size (counted in patients).
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.harness import CACHE_DIR, Case

DEFAULT_PATIENTS = (1_000_000,)


def cases(options: argparse.Namespace) -> list[Case]:
    sizes = options.rows or DEFAULT_PATIENTS
    return [
        Case(
            name=f"generate_csv_{patients}",
            argv=[
                sys.executable,
                "-m",
                "pipelines.cli",
                "generate",
                "--patients",
                str(patients),
                "--seed",
                "42",
                "--format",
                "csv",
                "--out",
                str(CACHE_DIR / f"generate_{patients}"),
            ],
            rows=patients,
            targets={"wall_s": 60.0, "peak_rss_mb": 2048.0},
        )
        for patients in sizes
    ]
