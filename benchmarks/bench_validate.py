"""Validation of N intake rows (default 1,000,000): time and peak memory of `validate`.

Target: 1,000,000 rows in under 20 s and under 2 GB on the project machine.

The input is `benchmarks/cache/validate-<N>/intake.csv`, built once by `cases()`
(deterministic, seed 7) so that building it is never measured. About 0.1% of the
rows carry a bad value, so the quarantine path is measured too. The measured command
is `python -m benchmarks.bench_validate DIR`, which runs the same function as
`redflags validate DIR` but exits 0 when rows are quarantined (the harness reads a
non-zero exit as a failed case).
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.harness import CACHE_DIR, Case

DEFAULT_ROWS = 1_000_000
SEED = 7


def build_intake(path: Path, rows: int, seed: int = SEED) -> None:
    """A canonical intake CSV of `rows` rows, vectorised; about 0.1% invalid values."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from pipelines.contracts import load_contract

    rng = np.random.default_rng(seed)
    contract = load_contract("intake")
    ids = np.arange(rows)
    dates = np.datetime64("2020-01-01") + rng.integers(0, 1800, rows).astype("timedelta64[D]")
    columns: dict[str, np.ndarray] = {
        "encounter_id": np.char.add("E", ids.astype(str)),
        "patient_id": np.char.add("P", (ids // 3).astype(str)),
        "encounter_date": dates.astype(str),
        "age_years": rng.integers(18, 100, rows).astype(str),
        "chief_complaint": rng.choice(
            ["low back pain", "back pain at night, cough", "upper back pain", "", "fatigue"], rows
        ),
        "dx_codes": rng.choice(["M54.50", "M54.6;R05", "", "R53.83"], rows),
        "pain_duration_days": rng.integers(0, 400, rows).astype(str),
        "pain_score": rng.integers(0, 11, rows).astype(str),
    }
    for column in contract.columns:
        if column.name in columns:
            continue
        if column.type == "boolean":
            columns[column.name] = rng.choice(["true", "false", ""], rows, p=[0.2, 0.5, 0.3])
        elif column.allowed:
            columns[column.name] = rng.choice(list(column.allowed), rows)
    bad = rng.random(rows) < 0.001
    columns["sex"] = np.where(bad, "Q", columns["sex"])
    table = pa.table({name: columns[name] for name in contract.names})
    path.parent.mkdir(parents=True, exist_ok=True)
    pcsv.write_csv(table, path, pcsv.WriteOptions(quoting_style="needed"))


def input_dir(rows: int) -> Path:
    directory = CACHE_DIR / f"validate-{rows}"
    if not (directory / "intake.csv").exists():
        build_intake(directory / "intake.csv", rows)
    return directory


def cases(options) -> list[Case]:
    sizes = getattr(options, "rows", None) or [DEFAULT_ROWS]
    found = []
    for rows in sizes:
        directory = input_dir(rows)
        found.append(
            Case(
                name=f"validate_intake_{rows}",
                argv=[sys.executable, "-m", "benchmarks.bench_validate", str(directory)],
                rows=rows,
                targets={"wall_s": 20.0 * rows / DEFAULT_ROWS, "peak_rss_mb": 2048.0},
            )
        )
    return found


def main(argv: list[str]) -> int:
    from pipelines.ingest.stage import format_summary, validate_directory

    directory = Path(argv[0])
    summary = validate_directory(directory, docs_dir=directory / "docs")
    print(format_summary(summary, checked_only=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
