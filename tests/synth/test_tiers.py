"""The generator's tier mix, measured by the real scorer on generated data.

The ranges are the design of pipelines/synth/profile.yml (see the docstring of
pipelines/synth/__init__.py): 30% of presentations are other complaints; red
flags are uncommon but every tier occurs; low is the largest back-pain tier.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.scoring.jobs import score_file
from pipelines.synth import generate

TIER_SHARE_RANGES = {
    "not_back_pain": (0.26, 0.34),  # profile: 30% other complaints
    "low": (0.30, 0.50),
    "moderate": (0.15, 0.35),
    "high": (0.02, 0.08),
    "urgent": (0.002, 0.02),
    "emergency": (0.003, 0.02),
}


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datetime import date

    out = tmp_path_factory.mktemp("tiers")
    generate(
        out, patients=5000, seed=11, start=date(2023, 1, 1), end=date(2025, 12, 31), fmt="parquet"
    )
    score_file(out / "intake.parquet", out / "scored.parquet", "duckdb")
    return out / "scored.parquet"


def test_every_tier_within_its_designed_share(scored: Path):
    rows = duckdb.sql(
        f"SELECT tier, count(*) / sum(count(*)) OVER () FROM read_parquet('{scored}') GROUP BY 1"
    ).fetchall()
    shares = dict(rows)
    assert set(shares) == set(TIER_SHARE_RANGES)
    for tier, (low, high) in TIER_SHARE_RANGES.items():
        assert low <= shares[tier] <= high, (tier, shares[tier])


def test_history_driven_tiers_occur(scored: Path):
    """Moderate presentations flagged only by history (repeat visits, rising pain score)."""
    counts = duckdb.sql(
        f"""SELECT count(*) FILTER (WHERE repeat_presentation),
                   count(*) FILTER (WHERE progressive AND NOT coalesce(progressive_pain, false)),
                   count(*) FILTER (WHERE pain_persistent AND age_50_plus)
            FROM read_parquet('{scored}') WHERE tier = 'moderate'"""
    ).fetchall()[0]
    assert all(n > 0 for n in counts), counts
