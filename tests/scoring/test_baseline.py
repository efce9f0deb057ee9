"""A second method: the row-by-row baseline (benchmarks/) agrees with both engines."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pandas as pd
import pytest

from benchmarks.baseline_scoring import frame_to_rows, score_rows
from pipelines.scoring.engines import score_frame
from pipelines.scoring.rules import load_rules
from tests.support.scoring import BOOLEANS, CODES, FRAGMENTS, intake_frame, load_cases

RULES = load_rules()
COMPARED = [
    c
    for c in RULES.output_columns
    if c not in ("patient_id", "encounter_date", "age_years", "rules_version")
]


def _random_table(seed: int, n: int) -> pd.DataFrame:
    """Seeded random intake rows (no stray apostrophes: the baseline splits words on spaces)."""
    rng = random.Random(seed)
    fragments = [f for f in FRAGMENTS if f != "'"]
    rows = []
    for i in range(n):
        row = {
            "encounter_id": f"E{rng.randrange(10**6):06d}-{i}",
            "patient_id": f"P{rng.randrange(n // 4 + 1)}",
            "encounter_date": date(2024, 1, 1) + timedelta(days=rng.randrange(400)),
            "age_years": rng.choice([None, rng.randrange(91)]),
            "sex": "M",
            "smoking_status": rng.choice([None, "never", "former", "current", "unknown"]),
            "pain_site": rng.choice([None, None, None, "lumbar", "thoracic", "sacral"]),
            "pain_duration_days": rng.choice([None, rng.randrange(60)]),
            "pain_score": rng.choice([None, rng.randrange(11)]),
            "chief_complaint": rng.choice(
                [None, " ".join(rng.choice(fragments) for _ in range(rng.randrange(12)))]
            ),
            "dx_codes": rng.choice(
                [None, ";".join(rng.choice(CODES) for _ in range(rng.randrange(4)))]
            ),
        }
        for name in BOOLEANS:
            row[name] = rng.choice([None, None, True, False])
        rows.append(row)
    return intake_frame(rows)


def _fixture_table() -> pd.DataFrame:
    defaults, cases = load_cases()
    rows = [
        {
            **defaults,
            **r,
            "encounter_id": f"{n}:{r['encounter_id']}",
            "patient_id": f"{n}:{r.get('patient_id', defaults['patient_id'])}",
        }
        for n, case in enumerate(cases)
        for r in case["rows"]
    ]
    return intake_frame(rows)


def _baseline(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(score_rows(frame_to_rows(table))).set_index("encounter_id")


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
@pytest.mark.parametrize("table", ["fixture", "random"])
def test_baseline_agrees_with_engine(engine: str, table: str):
    intake = _fixture_table() if table == "fixture" else _random_table(seed=4, n=400)
    engine_result = score_frame(intake, engine, RULES).set_index("encounter_id")
    baseline = _baseline(intake).loc[engine_result.index]
    differences = {}
    for column in COMPARED:
        if column == "encounter_id":
            continue
        got = engine_result[column].astype(object).where(engine_result[column].notna(), None)
        want = baseline[column].astype(object).where(baseline[column].notna(), None)
        bad = [(i, g, w) for i, g, w in zip(got.index, got, want, strict=True) if g != w]
        if bad:
            differences[column] = bad[:3]
    assert not differences
