"""Benchmark inputs made by the project's own generator, cached by size and seed.

The first benchmark that needs N patients generates them under benchmarks/cache/;
later runs reuse the files. A marker file is written last, so an interrupted
generation is redone rather than trusted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.harness import CACHE_DIR

SEED = 20261128
# Intake rows per patient made by the generator (7,079 rows for 2,000 patients in
# data/sample; 3.52M for 1M), used to turn a number of intake rows into patients.
ROWS_PER_PATIENT = 3.5


def patients_for_rows(rows: int) -> int:
    return max(1, round(rows / ROWS_PER_PATIENT))


def ensure_input(patients: int, *, seed: int = SEED, fmt: str = "csv") -> Path:
    """The generator's output for `patients` patients, generated once and cached."""
    out = CACHE_DIR / f"gen-{patients}-{seed}-{fmt}"
    marker = out / ".complete"
    if marker.exists():
        return out
    print(f"  generating {patients:,} patients into {out} (cached for later runs) ...", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "generate",
            "--patients",
            str(patients),
            "--seed",
            str(seed),
            "--out",
            str(out),
            "--format",
            fmt,
        ],
        check=True,
    )
    marker.write_text("ok\n", encoding="utf-8")
    return out


def intake_rows(directory: Path) -> int:
    """Rows of the intake file(s) in a generated directory, counted by DuckDB."""
    import duckdb

    files = sorted(str(p) for p in directory.glob("intake*"))
    con = duckdb.connect()
    return con.execute(f"SELECT count(*) FROM read_csv({files!r}, header=true)").fetchone()[0]
