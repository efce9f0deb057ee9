"""Cohort build and publish on 1M and 10M presentations (target: under 30 s for 10M).

The inputs (staging.intake, staging.referrals, staging.diagnoses and
features.presentation_flags) are generated deterministically with numpy, in chunks
of whole patients, into a cached warehouse under benchmarks/cache/; only the cohort
build and publish run in the measured process.

    python -m benchmarks --only cohorts --rows 1000000
    python -m benchmarks.bench_cohorts build benchmarks/cache/cohorts-1000000.duckdb
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import CACHE_DIR, Case

DEFAULT_ROWS = (1_000_000, 10_000_000)
CHUNK = 1_000_000
PRESENTATIONS_PER_PATIENT = 4
SEED = 20240601
# Share of presentations with each flag TRUE: a few common ones, the rest rare, so
# that the number of red-flag patterns is like that of real data, not 2^21.
FLAG_SHARE = {
    "age_40_plus": 0.6,
    "age_50_plus": 0.4,
    "ever_smoked": 0.3,
    "pain_persistent": 0.3,
    "progressive": 0.1,
    "night_pain": 0.1,
    "rest_pain": 0.08,
    "fatigue": 0.08,
    "persistent_cough": 0.06,
    "thoracic_pain": 0.15,
}


def _chunk_frame(start: int, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """n presentations of n / 4 whole patients, numbered from `start`."""
    from pipelines.scoring.output import sql_types
    from pipelines.scoring.rules import load_rules

    columns = sql_types(load_rules())
    patients = start // PRESENTATIONS_PER_PATIENT + np.arange(n) // PRESENTATIONS_PER_PATIENT
    first = np.repeat(rng.integers(0, 900, n // PRESENTATIONS_PER_PATIENT + 1), 4)[:n]
    gaps = rng.choice([0, 3, 14, 30, 60, 120, 181, 365], size=n)
    gaps[np.arange(n) % PRESENTATIONS_PER_PATIENT == 0] = 0
    within = np.cumsum(gaps).reshape(-1, PRESENTATIONS_PER_PATIENT)
    within = (within - within[:, :1]).reshape(-1)
    frame = pd.DataFrame(
        {
            "row": np.arange(start, start + n),
            "patient": patients,
            "day": first + within,
            "age_years": np.repeat(rng.integers(18, 91, n // 4 + 1), 4)[:n],
            "tier_code": rng.choice(5, size=n, p=[0.03, 0.1, 0.35, 0.42, 0.1]),
            "sex_code": rng.choice(4, size=n, p=[0.5, 0.46, 0.02, 0.02]),
            "site_code": rng.integers(0, 4, n),
            "smoking_code": rng.integers(0, 4, n),
            "score": rng.integers(0, 15, n),
        }
    )
    booleans = [name for name, type_ in columns.items() if type_ == "BOOLEAN"]
    for name in booleans:
        if name != "back_pain":
            frame[name] = rng.random(n) < FLAG_SHARE.get(name, 0.03)
    return frame


def prepare(path: Path, rows: int) -> None:
    """Write the cached input warehouse once; later runs reuse it."""
    import duckdb

    from pipelines.scoring.output import sql_types, table_ddl
    from pipelines.scoring.rules import load_rules
    from pipelines.warehouse import create_schemas

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    con = duckdb.connect(str(partial))
    create_schemas(con)
    con.execute(table_ddl(load_rules()))
    rng = np.random.default_rng(SEED)
    flags = list(sql_types(load_rules()))
    computed = {
        "encounter_id": "'E' || row",
        "patient_id": "'P' || patient",
        "encounter_date": "DATE '2022-01-01' + CAST(day AS INTEGER)",
        "back_pain": "tier_code < 4",
        "pain_site": "['lumbar', 'thoracic', 'cervical', 'unspecified'][site_code + 1]",
        "tier": "['urgent', 'high', 'moderate', 'low', 'not_back_pain'][tier_code + 1]",
        "lung_symptom_count": "0",
        "completeness": "0.8",
        "rules_version": "'bench'",
    }
    select_flags = ", ".join(f"{computed.get(c, c)} AS {c}" for c in flags)
    for start in range(0, rows, CHUNK):
        chunk = _chunk_frame(start, min(CHUNK, rows - start), rng)
        con.register("chunk", chunk)
        con.execute(f"INSERT INTO features.presentation_flags SELECT {select_flags} FROM chunk")
        con.execute(
            """INSERT INTO staging.intake BY NAME
               SELECT 'E' || row AS encounter_id, 'P' || patient AS patient_id,
                      DATE '2022-01-01' + CAST(day AS INTEGER) AS encounter_date, age_years,
                      ['F', 'M', 'X', 'U'][sex_code + 1] AS sex,
                      ['never', 'former', 'current', NULL][smoking_code + 1] AS smoking_status,
                      prior_cancer, night_pain, tier_code < 4 AS back_pain
               FROM chunk"""
        )
        # about one referral per three presentations, 0-100 days after it
        n = len(chunk)
        picks = rng.random(n) < 0.33
        referrals = pd.DataFrame(
            {
                "row": chunk["row"].to_numpy()[picks],
                "patient": chunk["patient"].to_numpy()[picks],
                "day": chunk["day"].to_numpy()[picks] + rng.integers(-5, 100, picks.sum()),
                "kind": rng.integers(0, 8, picks.sum()),
            }
        )
        con.register("refs", referrals)
        con.execute(
            """INSERT INTO staging.referrals BY NAME
               SELECT 'R' || row AS referral_id, 'P' || patient AS patient_id,
                      DATE '2022-01-01' + CAST(day AS INTEGER) AS referral_date,
                      CASE WHEN kind = 7 THEN 'biopsy' ELSE 'imaging' END AS referral_type,
                      CASE WHEN kind < 4 THEN ['xray', 'ct', 'mri', 'mri'][kind + 1] END
                          AS modality,
                      CASE WHEN kind < 4 THEN ['spine', 'chest', 'spine', 'other'][kind + 1] END
                          AS body_region,
                      CASE WHEN kind >= 4 THEN ['72148', '71250', '72100', '32408'][kind - 3] END
                          AS code,
                      CASE WHEN kind >= 4 THEN 'CPT' END AS code_system
               FROM refs"""
        )
        diag = referrals[referrals["kind"] == 7]
        con.register("diag", diag)
        con.execute(
            """INSERT INTO staging.diagnoses BY NAME
               SELECT 'P' || patient AS patient_id,
                      DATE '2022-01-01' + CAST(day + 20 AS INTEGER) AS diagnosis_date,
                      'C34.1' AS code, 'ICD10CM' AS code_system
               FROM diag"""
        )
        for name in ("chunk", "refs", "diag"):
            con.unregister(name)
    con.execute("CHECKPOINT")
    con.close()
    partial.rename(path)


def cases(options) -> list[Case]:
    sizes = options.rows or DEFAULT_ROWS
    out = []
    for rows in sizes:
        path = CACHE_DIR / f"cohorts-{rows}.duckdb"
        print(f"preparing {path} ...", flush=True)
        prepare(path, rows)
        out.append(
            Case(
                name=f"cohorts build+publish {rows:,} presentations",
                argv=[sys.executable, "-m", "benchmarks.bench_cohorts", "build", str(path)],
                rows=rows,
                targets={"wall_s": 30.0} if rows >= 10_000_000 else {},
            )
        )
    return out


def build(path: str) -> None:
    """The measured work: every cohort model and mart, then the publish transaction.

    On a connection opened as the flow opens its own (`writer`, with the flow's default
    DuckDB memory limit), so that time and peak memory are what a run would see.
    """
    from pipelines.cohorts.build import build_cohorts, publish_marts
    from pipelines.config import DEFAULT_MEMORY_LIMIT
    from pipelines.warehouse import writer

    with writer(path, timeout=60.0, memory_limit=DEFAULT_MEMORY_LIMIT) as con:
        start = time.perf_counter()
        built = build_cohorts(con)
        middle = time.perf_counter()
        publish_marts(con, f"bench-{int(time.time())}")
        end = time.perf_counter()
    print(
        f"build {middle - start:.1f} s, publish {end - middle:.1f} s, marts {built['marts']}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "build":
        build(sys.argv[2])
    else:
        sys.exit("usage: python -m benchmarks.bench_cohorts build WAREHOUSE")
