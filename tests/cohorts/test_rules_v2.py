"""Hand-worked fixtures of the version 2 cohort rules (CLINICAL.md "Cohort"): follow-up
that ends at death or the end of observation, imaging outcomes by body region, care gaps
per episode, the two overuse measures and rule performance.

Dates are day numbers from D0 (tests/support/cohorts.py); every expected value is worked
out in the comments from the rule, by subtraction on the page.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.support.cohorts import built as build
from tests.support.cohorts import day, definition, patient, presentation, referral


def summary(con, outcome="imaging_any") -> dict:
    rows = con.execute(
        """SELECT window_days, n_eligible, n_censored, n_died
           FROM marts.cohort_summary
           WHERE stratum_type = 'all' AND outcome = ? ORDER BY window_days""",
        [outcome],
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_follow_up_ends_at_death_or_observation_end(tmp_path: Path):
    rows = [
        presentation("EA", "A", 0),  # died on day 5
        presentation("EB", "B", 0),  # observation ends on day 20, before the data end
        presentation("EC", "C", 0),  # died on day 7: followed through the 7-day window
        presentation("ED", "D", 0),  # followed to the data end
        presentation("LATE", "Z", 100, back_pain=False, tier="not_back_pain"),  # data end 100
    ]
    refs = [
        referral("RB", "B", 25, modality="mri", body_region="spine"),  # after B's observation
        referral("RD", "D", 10, modality="mri", body_region="spine"),
    ]
    people = [
        patient("A", died=5, observation_end=400),
        patient("B", observation_end=20),
        patient("C", died=7),
        patient("D", observation_start=-300),
        patient("Z", died=None),
    ]
    con = build(tmp_path, rows, refs, patients=people)
    assert con.execute(
        "SELECT encounter_id, followup_days, followup_end_reason FROM marts.index_presentations "
        "ORDER BY 1"
    ).fetchall() == [
        ("EA", 5, "death"),
        ("EB", 20, "observation_end"),
        ("EC", 7, "death"),
        ("ED", 100, "data_end"),
    ]
    # eligible when followup_days >= W: A (5) for W=1; C (7) for 1, 7; B (20) for 1, 7, 14;
    # D (100) always. Censored by death: A for 7, 14, 28, 90; C for 14, 28, 90.
    assert summary(con) == {
        1: (4, 0, 0),
        7: (3, 1, 1),
        14: (2, 2, 2),
        28: (1, 3, 2),
        90: (1, 3, 2),
    }
    # Kaplan-Meier: A leaves after day 5, C after day 7, D is imaged on day 10, B is
    # censored on day 20 (its imaging on day 25 lies after its observation): on day 10,
    # B and D are at risk, one event: S = 1/2.
    km = dict(
        (day, (at_risk, events, incidence))
        for day, at_risk, events, incidence in con.execute(
            "SELECT day, n_at_risk, n_events, cumulative_incidence FROM marts.time_to_referral "
            "WHERE tier = 'all'"
        ).fetchall()
    )
    assert km[0] == (4, 0, 0.0)
    assert km[6] == (3, 0, 0.0)
    assert km[8] == (2, 0, 0.0)
    assert km[10] == (2, 1, 0.5)
    assert km[21] == (0, 0, 0.5)
    assert km[25][1] == 0


def test_imaging_of_a_known_other_region_is_no_outcome(tmp_path: Path):
    rows = [presentation("E1", "A", 0), presentation("LATE", "Z", 100)]
    refs = [
        referral("R1", "A", 1, modality="xray", body_region="other"),  # a limb: no outcome
        referral("R2", "A", 2, modality="ct", body_region=None),  # unknown region: counts
        referral("R3", "A", 3, modality="xray", body_region="chest"),
        referral("R4", "A", 4, referral_type="biopsy", body_region="other"),  # a biopsy counts
    ]
    con = build(tmp_path, rows, refs)
    assert con.execute(
        """SELECT days_to_imaging_any, days_to_imaging_spine, days_to_imaging_chest,
                  days_to_imaging_xray, days_to_imaging_ct, days_to_biopsy_any
           FROM marts.index_presentations WHERE encounter_id = 'E1'"""
    ).fetchall() == [(2, None, 3, 3, 2, 4)]


def test_care_gaps_per_episode(tmp_path: Path):
    rows = [
        # A: escalates to urgent on day 9, never imaged: a gap, clock from day 9
        presentation("A1", "A", 0),
        presentation("A2", "A", 9, tier="urgent"),
        # B: the same, imaged of the spine on day 9: no gap
        presentation("B1", "B", 0),
        presentation("B2", "B", 9, tier="urgent"),
        # C: emergency index, spine imaging on day 2 > 1: a gap, 2 days to imaging
        presentation("C1", "C", 0, tier="emergency"),
        # D: high index, chest X-ray on day 14 exactly: no gap
        presentation("D1", "D", 0, tier="high"),
        # E: high index starts the one clock; the emergency on day 3 starts none; the chest
        # X-ray on day 5 closes the high clock: no gap
        presentation("E1", "E", 0, tier="high"),
        presentation("E2", "E", 3, tier="emergency"),
        # F: urgent on day 95, data end 100: its 7 days have not passed
        presentation("F1", "F", 95, tier="urgent"),
        # G: high, imaging of an unknown region on day 1 does not qualify: a gap
        presentation("G1", "G", 0, tier="high"),
        # H: urgent, died on day 3: the 7 days never passed within follow-up
        presentation("H1", "H", 0, tier="urgent"),
        presentation("LATE", "Z", 100, back_pain=False, tier="not_back_pain"),
    ]
    refs = [
        referral("RB", "B", 9, modality="mri", body_region="spine"),
        referral("RC", "C", 2, modality="mri", body_region="spine"),
        referral("RD", "D", 14, modality="xray", body_region="chest"),
        referral("RE", "E", 5, modality="xray", body_region="chest"),
        referral("RG", "G", 1, modality="ct", body_region=None),
    ]
    con = build(tmp_path, rows, refs, patients=[patient("H", died=3)])
    assert con.execute(
        """SELECT care_gap, encounter_id, trigger_encounter_id, trigger_tier,
                  days_index_to_trigger, window_days, days_to_imaging, days_since_trigger
           FROM marts.care_gaps"""
    ).fetchall() == [
        ("emergency_without_spine_imaging", "C1", "C1", "emergency", 0, 1, 2, 100),
        ("urgent_without_spine_imaging", "A1", "A2", "urgent", 9, 7, None, 91),
        ("high_without_imaging", "G1", "G1", "high", 0, 14, None, 100),
    ]


def wilson(x: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's score interval written out (Newcombe 1998, method 3)."""
    p = x / n
    centre = (2 * n * p + z * z) / (2 * (n + z * z))
    half = z * math.sqrt(z * z + 4 * n * p * (1 - p)) / (2 * (n + z * z))
    return max(0.0, centre - half), min(1.0, centre + half)


def dx(pid: str, on: int, code: str, system: str = "ICD10CM") -> dict:
    """A row of staging.diagnoses on day `on`."""
    return {"patient_id": pid, "diagnosis_date": day(on), "code": code, "code_system": system}


def test_rule_performance_targets_follow_up_and_crosswalk(tmp_path: Path):
    rows = [
        presentation("S0", "S", 0, tier="high"),  # SNOMED lung cancer on day 200: TP
        presentation("K0", "K", 0, tier="urgent"),  # SNOMED bone metastasis on day 30
        presentation("M0", "M", 0, tier="low"),  # myeloma on day 100
        presentation("N0", "N", 0, tier="low"),  # nothing, followed 500 days
        presentation("Q0", "Q", 440, tier="high"),  # followed 60 days only: excluded
        presentation("P0", "P", 0, tier="high"),  # lung cancer 10 days before the index
        presentation("LATE", "Z", 500, back_pain=False, tier="not_back_pain"),
    ]
    diagnoses = [
        dx("S", 200, "93880001", "SNOMED"),
        dx("K", 30, "94222008", "SNOMED"),
        dx("M", 100, "C90.00"),
        dx("P", -10, "C34.90"),
    ]
    con = build(tmp_path, rows, diagnoses=diagnoses)
    got = {
        target: counts
        for target, *counts in con.execute(
            """SELECT target, tp, fp, fn, tn FROM marts.rule_performance
               WHERE rule_type = 'tier_at_or_above' AND rule = 'high'"""
        ).fetchall()
    }
    assert got == {
        # positives (high or above) S, K, P, Q; Q lacks follow-up, P had lung cancer before
        "lung_cancer": [1, 1, 0, 2],  # S TP, K FP, M N TN
        "bone_metastasis": [1, 2, 0, 2],  # K TP, S P FP, M N TN
        "myeloma": [0, 3, 1, 1],  # S K P FP, M FN, N TN
        "any_target": [2, 0, 1, 1],  # S K TP, M FN, N TN (P excluded: prior lung cancer)
    }
    row = con.execute(
        """SELECT sensitivity, sensitivity_ci_low, sensitivity_ci_high, specificity,
                  specificity_ci_low, specificity_ci_high, ppv, ppv_ci_low, ppv_ci_high,
                  npv, npv_ci_low, npv_ci_high,
                  lr_positive, lr_positive_ci_low, lr_positive_ci_high
           FROM marts.rule_performance
           WHERE target = 'lung_cancer' AND rule_type = 'tier_at_or_above' AND rule = 'high'"""
    ).fetchone()
    # TP 1, FP 1, FN 0, TN 2: sensitivity 1/1, specificity 2/3, PPV 1/2, NPV 2/2;
    # LR+ = 1 / (1/3) = 3, log-method SE sqrt(1/1 - 1/1 + 1/1 - 1/3)
    z = 1.959963984540054
    se = math.sqrt(1 - 1 + 1 - 1 / 3)
    expected = (
        1.0, *wilson(1, 1), 2 / 3, *wilson(2, 3), 0.5, *wilson(1, 2), 1.0, *wilson(2, 2),
        3.0, 3 * math.exp(-z * se), 3 * math.exp(z * se),
    )  # fmt: skip
    assert row == pytest.approx(expected, rel=1e-12)
    lr = con.execute(
        """SELECT lr_positive, lr_positive_ci_low FROM marts.rule_performance
           WHERE target = 'myeloma' AND rule = 'high'"""
    ).fetchone()
    assert lr == (None, None)  # no true positive: no log


def test_overuse_measures(tmp_path: Path):
    cancer_flag = definition().raw["overuse"]["hedis_lbp"]["exclusion_flags"][0]

    def hedis(pid: str, on: int = 0, **values) -> dict:
        # moderate at the index: in hedis_lbp (lumbar), never in low_value_imaging
        return presentation(f"{pid}0", pid, on, tier="moderate", **values)

    def before(pid: str, days: int, **values) -> dict:
        # an earlier presentation that is not back pain: it starts no episode
        return presentation(f"{pid}-{days}", pid, -days, back_pain=False, tier="not_back_pain",
                            **values)  # fmt: skip

    rows = [
        # hedis_lbp, counted (data end 100: followed for 28 days)
        hedis("A"),  # not imaged
        hedis("B"),  # a chest X-ray on day 3 is not back imaging: not imaged
        hedis("C"),  # spine MRI on day 10: imaged
        hedis("E", pain_site="cervical", dx_codes="M54.50"),  # a low-back-pain code
        hedis("G"),
        before("G", 100, dx_codes="S32.001A"),  # trauma 100 days before: past its 90 days
        hedis("O"),  # osteoporosis 366 days before (diagnoses): past 365
        hedis("Y", age_years=18),
        hedis("S", age_years=70),  # spine X-ray on day 28: imaged, 65-75
        hedis("LATE", 80),  # followed 20 days: censored
        # hedis_lbp, each exclusion once
        hedis("XT"),
        before("XT", 60, dx_codes="S32.001A"),  # trauma within 90 days
        hedis("XO"),  # osteoporosis M81.0 300 days before (diagnoses)
        hedis("XS", dx_codes="M54.50;Z79.52"),  # steroid use, on the index date
        hedis("XD"),  # IV drug use F11.20 10 days before (diagnoses)
        hedis("XI"),  # immunosuppression B20 (diagnoses, on the index date)
        hedis("XN"),
        before("XN", 200, dx_codes="M46.25"),  # spinal infection (vertebral osteomyelitis)
        hedis("XA"),  # spondylopathy M45.6 exactly 365 days before (diagnoses)
        hedis("XL"),  # lumbar surgery Z98.1 30 days before (diagnoses)
        hedis("XP"),  # palliative care Z51.5 5 days before (diagnoses)
        hedis("XC"),
        before("XC", 100, **{cancer_flag: True}),  # known cancer
        hedis("XR", neuro_symptom=True),  # a neurological symptom at the index
        hedis("X76", age_years=76),  # too old
        hedis("XV", pain_site="cervical"),  # neither a low-back-pain code nor site
        # low_value_imaging (cervical, so not hedis_lbp)
        presentation("L1a", "L1", 0, pain_site="cervical"),
        presentation("L1b", "L1", 0, pain_site="cervical", tier="urgent"),  # same day, MRI
        presentation("L2a", "L2", 0, pain_site="cervical"),  # imaged day 5, urgent day 10
        presentation("L2b", "L2", 10, pain_site="cervical", tier="urgent"),
        presentation("L3a", "L3", 0, pain_site="cervical"),  # moderate on day 20: removed
        presentation("L3b", "L3", 20, pain_site="cervical", tier="moderate"),
        presentation("L4a", "L4", 0, pain_site="cervical"),  # moderate on day 30: too late
        presentation("L4b", "L4", 30, pain_site="cervical", tier="moderate"),
        presentation("L5a", "L5", 0, pain_site="cervical"),  # a chest CT is not overuse
        presentation("LATE", "Z", 100, back_pain=False, tier="not_back_pain"),
    ]
    refs = [
        referral("RB", "B", 3, modality="xray", body_region="chest"),
        referral("RC", "C", 10, modality="mri", body_region="spine"),
        referral("RS", "S", 28, modality="xray", body_region="spine"),
        referral("RL1", "L1", 0, modality="mri", body_region="spine"),
        referral("RL2", "L2", 5, modality="mri", body_region="spine"),
        referral("RL5", "L5", 2, modality="ct", body_region="chest"),
    ]
    diagnoses = [
        dx("O", -366, "M81.0"),
        dx("XO", -300, "M81.0"),
        dx("XD", -10, "F11.20"),
        dx("XI", 0, "B20"),
        dx("XA", -365, "M45.6"),
        dx("XL", -30, "Z98.1"),
        dx("XP", -5, "Z51.5"),
    ]
    con = build(tmp_path, rows, refs, diagnoses=diagnoses)
    got = con.execute(
        """SELECT measure, stratum_value, n_eligible, n_imaged, n_not_imaged, n_censored
           FROM marts.imaging_overuse"""
    ).fetchall()
    assert got == [
        # A B C E G O Y S eligible, C S imaged; LATE censored (45 years old)
        ("hedis_lbp", "all", 8, 2, 6, 1),
        ("hedis_lbp", "18-64", 7, 1, 6, 1),
        ("hedis_lbp", "65-75", 1, 1, 0, 0),
        # L2 (imaged before its escalation), L4, L5; L1 and L3 removed
        ("low_value_imaging", "all", 3, 1, 2, 0),
        ("low_value_imaging", "18-64", 3, 1, 2, 0),
        ("low_value_imaging", "65-75", 0, 0, 0, 0),
    ]
