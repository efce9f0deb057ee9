"""The whole pipeline on data/sample/, counted against the files by a second route."""

from __future__ import annotations

import csv

import duckdb

from tests.support import SAMPLE_DIR


def csv_rows(name: str) -> int:
    """Data rows of a sample file, by Python's csv module (not by the pipeline's readers)."""
    with (SAMPLE_DIR / name).open(newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def test_every_sample_row_arrives_and_is_accepted(sample_run):
    expected = {t: csv_rows(f"{t}.csv") for t in ("intake", "referrals", "diagnoses", "patients")}
    con = duckdb.connect(str(sample_run.warehouse), read_only=True)
    try:
        for table, n in expected.items():
            assert con.execute(f"SELECT count(*) FROM raw.{table}").fetchone()[0] == n
            assert con.execute(f"SELECT count(*) FROM staging.{table}").fetchone()[0] == n
            assert con.execute(f"SELECT count(*) FROM quarantine.{table}").fetchone()[0] == 0
        scored = con.execute("SELECT count(*) FROM features.presentation_flags").fetchone()[0]
        assert scored == expected["intake"]
        tiers = {t for (t,) in con.execute("SELECT DISTINCT tier FROM features.presentation_flags")
                 .fetchall()}  # fmt: skip
        assert tiers == {"emergency", "urgent", "high", "moderate", "low", "not_back_pain"}
        for mart in ("index_presentations", "cohort_summary", "time_to_referral", "care_gaps",
                     "imaging_overuse", "rule_performance", "documentation_quality"):  # fmt: skip
            assert con.execute(f"SELECT count(*) FROM marts.{mart}").fetchone()[0] > 0, mart
    finally:
        con.close()
    total = sum(expected.values())
    assert f"total: {total:,} rows read = {total:,} accepted + 0 quarantined" in sample_run.stdout
    assert f"scored {expected['intake']:,} presentations (duckdb)" in sample_run.stdout
    assert (sample_run.warehouse.parent / "report.html").is_file()
