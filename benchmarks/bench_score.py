"""Scoring benchmarks: both engines at 1M and 10M presentations, the baseline at 100k.

Each case runs `redflags score INPUT.parquet --out OUT.parquet --engine E` (or the
row-by-row baseline) in a fresh process; the harness records wall time, rows/s
and peak RSS. Targets (issue 4): DuckDB 10M < 60 s and < 4 GB; pandas within 3x
of DuckDB on 1M (compare the two rows of the results table); the engines at
least 100x faster than the baseline per row.

Inputs are cached under benchmarks/cache/: made by the synthetic generator
(pipelines.synth) when it is installed, else by a deterministic DuckDB query
(hash-based values, the same every time).
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

from benchmarks.harness import CACHE_DIR, Case

DEFAULT_SIZES = (1_000_000, 10_000_000)
BASELINE_ROWS = 100_000
PRESENTATIONS_PER_PATIENT = 3.5

# Fallback input: complaint fragments and codes, picked by hash of the row number.
FRAGMENTS = [
    "low back pain",
    "back pain, denies weight loss",
    "lumbago, no incontinence",
    "upper back pain worse at night",
    "backache",
    "cough",
    "back pain with weakness",
    "mid back pain; fatigue",
    "back pain but no fever",
    "sciatica",
    "headache",
    "back pain, negative for hemoptysis",
    "thoracic pain, shortness of breath",
    "lower back pain not relieved by rest",
    "",
    "knee pain",
    "getting worse",
]
CODES = ["M54.50", "M54.6", "M54.9", "R05.1", "R53.83", "", "", "Z87.891", "C34.1", "J06.9"]


def _pick(values: list[str], salt: int) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"list_extract([{quoted}], 1 + CAST(hash(i, {salt}) % {len(values)} AS INTEGER))"


def _maybe_bool(salt: int) -> str:
    return (
        f"CASE CAST(hash(i, {salt}) % 10 AS INTEGER) WHEN 0 THEN true "
        f"WHEN 1 THEN NULL WHEN 2 THEN NULL ELSE false END"
    )


def fallback_input(rows: int, path: Path) -> None:
    """A deterministic intake file of `rows` presentations (no generator needed)."""
    from pipelines.contracts import load_contract

    patients = max(1, int(rows / PRESENTATIONS_PER_PATIENT))
    exprs = {
        "encounter_id": "'E' || lpad(CAST(i AS VARCHAR), 9, '0')",
        "patient_id": f"'P' || lpad(CAST(hash(i, 1) % {patients} AS VARCHAR), 8, '0')",
        "encounter_date": "DATE '2023-01-01' + CAST(hash(i, 2) % 730 AS INTEGER)",
        "age_years": "CAST(18 + hash(i, 3) % 73 AS INTEGER)",
        "sex": _pick(["F", "M"], 4),
        "smoking_status": _pick(["never", "former", "current", "unknown"], 5),
        "chief_complaint": f"{_pick(FRAGMENTS, 6)} || ', ' || {_pick(FRAGMENTS, 7)}",
        "dx_codes": f"{_pick(CODES, 8)} || ';' || {_pick(CODES, 9)}",
        "pain_site": "NULL",
        "pain_duration_days": "CAST(hash(i, 10) % 60 AS INTEGER)",
        "pain_score": "CAST(hash(i, 11) % 11 AS INTEGER)",
    }
    contract = load_contract("intake")
    select = []
    for n, c in enumerate(contract.columns):
        expr = exprs.get(c.name) or (_maybe_bool(20 + n) if c.type == "boolean" else "NULL")
        select.append(f"CAST({expr} AS {c.duckdb_type}) AS {c.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT {', '.join(select)} FROM range({rows}) t(i)) TO '{path}' (FORMAT parquet)"
    )
    con.close()


def input_file(rows: int) -> tuple[Path, int]:
    """The cached input of about `rows` presentations, and its exact row count."""
    try:
        from pipelines.synth.generate import generate
    except ImportError:
        generate = None
    if generate is not None:
        out = CACHE_DIR / f"synth_{rows}"
        path = out / "intake.parquet"
        if not path.exists():
            patients = max(1, int(rows / PRESENTATIONS_PER_PATIENT))
            generate(out, patients=patients, seed=20240101, fmt="parquet")
    else:
        path = CACHE_DIR / f"intake_{rows}.parquet"
        if not path.exists():
            fallback_input(rows, path)
    n = duckdb.connect().execute(f"SELECT count(*) FROM '{path}'").fetchone()[0]
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
