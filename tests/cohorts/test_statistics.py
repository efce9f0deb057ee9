"""Statistics of the marts against published or hand-computed values.

Wilson intervals: Newcombe RG (1998), Two-sided confidence intervals for the single
proportion, Stat Med 17:857-872, Table I, method 3 (score interval without continuity
correction), to 4 decimals.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pytest

from pipelines.cohorts.definition import load_definition
from tests.support import SQL_DIR
from tests.support.cohorts import built as build
from tests.support.cohorts import day, presentation, referral

NEWCOMBE_WILSON = [
    # (x, n, lower, upper)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


def test_z_is_the_normal_quantile_of_95_percent():
    assert load_definition().z == pytest.approx(1.959964, abs=1e-6)


@pytest.mark.parametrize(("x", "n", "low", "high"), NEWCOMBE_WILSON)
def test_wilson_macro_matches_newcombe(x: int, n: int, low: float, high: float):
    con = duckdb.connect()
    con.execute("CREATE SCHEMA cohorts")
    con.execute((SQL_DIR / "macros" / "wilson_interval.sql").read_text())
    z = load_definition().z
    got = con.execute(
        "SELECT cohorts.wilson_low(?, ?, ?), cohorts.wilson_high(?, ?, ?)", [x, n, z, x, n, z]
    ).fetchone()
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_of_zero_denominator_is_null():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA cohorts")
    con.execute((SQL_DIR / "macros" / "wilson_interval.sql").read_text())
    assert con.execute("SELECT cohorts.wilson_low(0, 0, 1.96)").fetchone() == (None,)


def test_cohort_summary_carries_the_wilson_interval(tmp_path: Path):
    # 29 index presentations, one imaged on day 3: 1/29, Newcombe's case (d).
    rows = [presentation(f"E{i:02d}", f"P{i:02d}", 0) for i in range(29)]
    rows.append(presentation("X", "Z", 120, back_pain=False, tier="not_back_pain"))
    con = build(tmp_path, rows, [referral("R1", "P07", 3)])
    got = con.execute(
        """SELECT n_eligible, n_events, rate, ci_low, ci_high FROM marts.cohort_summary
           WHERE stratum_type = 'all' AND window_days = 14 AND outcome = 'imaging_any'"""
    ).fetchone()
    assert got[:2] == (29, 1)
    assert got[2:] == pytest.approx((1 / 29, 0.0061, 0.1718), abs=5e-5)


def test_kaplan_meier_against_a_hand_computed_curve(tmp_path: Path):
    # Data end day 200. Five index presentations (all tier low):
    #   S1 index day 100, imaged day 102 -> event at 2
    #   S2 index day  50, imaged day  52 -> event at 2
    #   S3 index day 197, no imaging     -> censored at 3 (at risk on day 3)
    #   S4 index day  10, imaged day  15 -> event at 5
    #   S5 index day  20, no imaging     -> censored after day 90
    rows = [
        presentation("S1", "A", 100),
        presentation("S2", "B", 50),
        presentation("S3", "C", 197),
        presentation("S4", "D", 10),
        presentation("S5", "E", 20),
    ]
    refs = [referral("R1", "A", 102), referral("R2", "B", 52), referral("R4", "D", 15)]
    con = build(tmp_path, rows, refs, data_end=day(200))
    curve = con.execute(
        """SELECT day, n_at_risk, n_events, cumulative_incidence, ci_low, ci_high
           FROM marts.time_to_referral WHERE tier = 'low' ORDER BY day"""
    ).fetchall()
    assert len(curve) == 91
    by_day = {r[0]: r[1:] for r in curve}
    # at risk: 5 through day 2; S1, S2 leave after day 2; S3 after day 3; S4 after day 5
    assert [by_day[d][0] for d in range(8)] == [5, 5, 5, 3, 2, 2, 1, 1]
    assert by_day[90][0] == 1
    assert [by_day[d][1] for d in range(8)] == [0, 0, 2, 0, 0, 1, 0, 0]
    # S(2) = 1 - 2/5 = 0.6; S(5) = 0.6 * (1 - 1/2) = 0.3
    assert by_day[0][2] == 0 and by_day[1][2] == 0
    assert by_day[2][2] == pytest.approx(0.4)
    assert by_day[4][2] == pytest.approx(0.4)
    assert by_day[5][2] == pytest.approx(0.7)
    assert by_day[90][2] == pytest.approx(0.7)
    # no interval while S = 1
    assert by_day[0][3:] == (None, None)

    # Greenwood: day 2: 2/(5*3) = 2/15; day 5: 2/15 + 1/(2*1) = 19/30.
    # log-log interval for S: S ** exp(+-z * sqrt(V) / |ln S|); incidence = 1 - S.
    def interval(s: float, v: float) -> tuple[float, float]:
        theta = 1.959964 * math.sqrt(v) / abs(math.log(s))
        return 1 - s ** math.exp(-theta), 1 - s ** math.exp(theta)

    assert by_day[2][3:] == pytest.approx(interval(0.6, 2 / 15), abs=1e-5)
    assert by_day[5][3:] == pytest.approx(interval(0.3, 19 / 30), abs=1e-5)
    # by hand, day 2: ln 0.6 = -0.510826, sqrt(2/15) = 0.365148,
    # theta = 1.959964 * 0.365148 / 0.510826 = 1.40102; exp(-theta) = 0.24635,
    # exp(theta) = 4.0592; 1 - 0.6 ** 0.24635 = 0.1182; 1 - 0.6 ** 4.0592 = 0.8743
    assert by_day[2][3:] == pytest.approx((0.1182, 0.8743), abs=1e-4)
    # `all` is the same five presentations
    assert con.execute(
        "SELECT count(*) FROM marts.time_to_referral a JOIN marts.time_to_referral b "
        "USING (day) WHERE a.tier = 'all' AND b.tier = 'low' "
        "AND a.n_at_risk = b.n_at_risk AND a.cumulative_incidence = b.cumulative_incidence"
    ).fetchone() == (91,)


def test_imaging_overuse_share_not_imaged(tmp_path: Path):
    # low_value_imaging: low-tier, 18-75, eligible for 28 days: L1..L6. L1 spine X-ray
    # day 10 (imaged); L2 chest CT day 28 (not imaged: only spine imaging counts); L3
    # imaged on day 29 (not within 28); L4 never; L5 imaging of an unknown region on
    # day 3 (not spine: not imaged); L6 an X-ray of the hip on day 20 and a spine MRI on
    # day 40 (not imaged). Excluded: age 76, tier moderate; index 20 days before data end
    # (censored).
    rows = [
        presentation("L1", "A", 0, age_years=30),
        presentation("L2", "B", 0, age_years=75),
        presentation("L3", "C", 0, age_years=18),
        presentation("L4", "D", 0, age_years=50),
        presentation("L5", "H", 0, age_years=40),
        presentation("L6", "I", 0, age_years=41),
        presentation("OLD", "E", 0, age_years=76),
        presentation("MOD", "F", 0, tier="moderate"),
        presentation("NEW", "G", 80),
    ]
    refs = [
        referral("R1", "A", 10, modality="xray", body_region="spine"),
        referral("R2", "B", 28, modality="ct", body_region="chest"),
        referral("R3", "C", 29, modality="mri", body_region="spine"),
        referral("R5", "E", 1, modality="mri", body_region="spine"),
        referral("R6", "H", 3),
        referral("R7", "I", 40, modality="mri", body_region="spine"),
        referral("R8", "I", 20, modality="xray", body_region="other"),
    ]
    con = build(tmp_path, rows, refs, data_end=day(100))
    got = con.execute(
        """SELECT n_eligible, n_imaged, n_not_imaged, share_not_imaged, n_censored
           FROM marts.imaging_overuse
           WHERE measure = 'low_value_imaging' AND stratum_type = 'all'"""
    ).fetchone()
    assert got == (6, 1, 5, 5 / 6, 1)


def test_rule_performance_hand_counted(tmp_path: Path):
    # Index tiers urgent, high, low, low, all followed for 500 days; lung cancer (C34.1)
    # within 365 days for the urgent and one low; a C79.51 (bone metastasis) 400 days
    # later does not count.
    rows = [
        presentation("U", "A", 0, tier="urgent", night_pain=True),
        presentation("H", "B", 0, tier="high"),
        presentation("L1", "C", 0, tier="low", night_pain=True),
        presentation("L2", "D", 0, tier="low"),
        presentation("X", "Z", 500, back_pain=False, tier="not_back_pain"),
    ]
    dx = [
        {"patient_id": "A", "diagnosis_date": day(30), "code": "C34.1", "code_system": "ICD10CM"},
        {"patient_id": "C", "diagnosis_date": day(365), "code": "c341", "code_system": "ICD10CM"},
        {"patient_id": "D", "diagnosis_date": day(400), "code": "C79.51", "code_system": "ICD10CM"},
    ]
    con = build(tmp_path, rows, diagnoses=dx)
    got = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            """SELECT rule_type, rule, tp, fp, fn, tn, sensitivity, specificity, ppv, npv,
                      lr_positive FROM marts.rule_performance WHERE target = 'lung_cancer'"""
        ).fetchall()
    }
    # emergency+: nobody positive
    assert got[("tier_at_or_above", "emergency")][:4] == (0, 0, 2, 2)
    # urgent+: U positive (TP); H, L1, L2 negative: L1 FN, H and L2 TN
    assert got[("tier_at_or_above", "urgent")] == (1, 0, 1, 2, 0.5, 1.0, 1.0, 2 / 3, None)
    # high+: U TP, H FP; L1 FN, L2 TN -> LR+ = 0.5 / 0.5 = 1
    assert got[("tier_at_or_above", "high")] == (1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 1.0)
    # low+: everyone positive
    assert got[("tier_at_or_above", "low")][:4] == (2, 2, 0, 0)
    # night_pain: U and L1, both with the target
    assert got[("flag", "night_pain")] == (2, 0, 0, 2, 1.0, 1.0, 1.0, 1.0, None)


def test_rule_performance_counts_each_index_presentation_once(tmp_path: Path):
    # Patient A has two index presentations (day 0 urgent, day 200 low: 200 > 180 days
    # apart) and two target diagnoses (days 250 and 260), each within 365 days of both
    # indexes and within A200's 200 days of follow-up: both indexes have the target,
    # each counted once, not once per diagnosis. B (high, followed 400 days) has none;
    # C's diagnosis comes 50 days before its index: C is excluded. The data end is set
    # after the diagnoses (diagnoses after it are ignored).
    rows = [
        presentation("A0", "A", 0, tier="urgent"),
        presentation("A200", "A", 200, tier="low"),
        presentation("B0", "B", 0, tier="high"),
        presentation("C100", "C", 100, tier="low"),
    ]
    dx = [
        {"patient_id": "A", "diagnosis_date": day(250), "code": "C34.1", "code_system": "ICD10CM"},
        {"patient_id": "A", "diagnosis_date": day(260), "code": "C79.51", "code_system": "ICD10CM"},
        {"patient_id": "C", "diagnosis_date": day(50), "code": "C34.1", "code_system": "ICD10CM"},
    ]
    con = build(tmp_path, rows, diagnoses=dx, data_end=day(400))
    got = {
        rule: counts
        for rule, *counts in con.execute(
            """SELECT rule, tp, fp, fn, tn FROM marts.rule_performance
               WHERE rule_type = 'tier_at_or_above' AND target = 'lung_cancer'"""
        ).fetchall()
    }
    # urgent+: A0 TP; A200 FN; B0 TN
    assert got["urgent"] == [1, 0, 1, 1]
    # high+: A0 TP, B0 FP; A200 FN
    assert got["high"] == [1, 1, 1, 0]
    # low+: every counted index presentation positive: A0, A200 TP; B0 FP
    assert got["low"] == [2, 1, 0, 0]


def test_rule_performance_is_empty_without_diagnoses(tmp_path: Path):
    con = build(tmp_path, [presentation("E1", "A", 0)])
    assert con.execute("SELECT count(*) FROM marts.rule_performance").fetchone() == (0,)


def test_documentation_quality_shares(tmp_path: Path):
    rows = [
        presentation("E1", "A", 0, night_pain=None, tier="high"),
        presentation("E2", "B", 0, night_pain=True, tier="low"),
        presentation("E3", "C", 0, night_pain=False, tier="low"),
        presentation("E4", "D", 0, night_pain=None, tier="low"),
    ]
    con = build(tmp_path, rows)
    got = dict(
        (r[0], r[1:])
        for r in con.execute(
            """SELECT tier, n_presentations, n_documented, n_missing, share_documented
               FROM marts.documentation_quality WHERE field = 'night_pain'"""
        ).fetchall()
    )
    assert got == {"all": (4, 2, 2, 0.5), "high": (1, 0, 1, 0.0), "low": (3, 2, 1, 2 / 3)}
