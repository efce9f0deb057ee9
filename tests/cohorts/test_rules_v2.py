"""Hand-worked fixtures of the version 2 cohort rules (CLINICAL.md "Cohort"): follow-up
that ends at death or the end of observation, imaging outcomes by body region, care gaps
per episode, the two overuse measures and rule performance.

Dates are day numbers from D0 (tests/support/cohorts.py); every expected value is worked
out in the comments from the rule, by subtraction on the page.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.cohorts import built as build
from tests.support.cohorts import patient, presentation, referral


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
