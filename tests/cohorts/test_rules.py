"""Hand-worked cohort rules: index and washout, windows, censoring, outcomes, episodes.

Dates are day numbers from D0 (tests/support/cohorts.py), so every expected value
below can be checked by subtraction on the page.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from pipelines.cohorts.build import build_cohorts, outcome_bits, publish_marts
from pipelines.cohorts.definition import load_definition
from pipelines.errors import UserError
from tests.support import SCHEMAS_DIR
from tests.support.cohorts import built as build
from tests.support.cohorts import day, presentation, referral, warehouse


def index_ids(con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT encounter_id FROM marts.index_presentations ORDER BY encounter_id"
        ).fetchall()
    ]


def summary(con, stratum_type="all", stratum_value="all", outcome="imaging_any") -> dict:
    rows = con.execute(
        """SELECT window_days, n_eligible, n_events, n_censored, median_days_to_event
           FROM marts.cohort_summary
           WHERE stratum_type = ? AND stratum_value = ? AND outcome = ?
           ORDER BY window_days""",
        [stratum_type, stratum_value, outcome],
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_washout_same_day_exactly_180_and_181_days(tmp_path: Path):
    rows = [
        # A: two on day 0 -> the first by encounter_id is the index; the second is not.
        presentation("A1", "A", 0),
        presentation("A2", "A", 0),
        # 180 days after A2: inside the washout (same day counts, so 180 blocks).
        presentation("A3", "A", 180),
        # 181 days after A3: a new index.
        presentation("A4", "A", 361),
        # B: 181 days after the first: a new index.
        presentation("B1", "B", 0),
        presentation("B2", "B", 181),
        # C: a presentation that is not back pain does not block, nor start an episode.
        presentation("C1", "C", 0),
        presentation("C2", "C", 100, back_pain=False, tier="not_back_pain"),
        presentation("C3", "C", 181),
        # D: the washout looks back at presentations, not indexes: 0, 150, 300 is one episode.
        presentation("D1", "D", 0),
        presentation("D2", "D", 150),
        presentation("D3", "D", 300),
    ]
    con = build(tmp_path, rows)
    assert index_ids(con) == ["A1", "A4", "B1", "B2", "C1", "C3", "D1"]


def test_same_day_order_uses_encounter_id(tmp_path: Path):
    con = build(tmp_path, [presentation("Z9", "P", 5), presentation("Z1", "P", 5)])
    assert index_ids(con) == ["Z1"]


def test_window_edges_and_median(tmp_path: Path):
    # One index per patient on day 0; the first imaging on day t; data end day 300.
    days = {"P1": 0, "P2": 1, "P3": 2, "P4": 14, "P5": 15, "P6": 28, "P7": 29, "P8": 90, "P9": 91}
    rows = [presentation(f"E{p}", p, 0) for p in days]
    rows.append(presentation("LATE", "Q", 300, back_pain=False, tier="not_back_pain"))
    refs = [referral(f"R{p}", p, t, modality="mri", body_region="spine") for p, t in days.items()]
    con = build(tmp_path, rows, refs)
    got = summary(con)
    # W=1: days 0,1; W=7: 0,1,2; W=14: +14; W=28: +15,28; W=90: +29,90 (91 is outside every
    # window).
    assert got == {
        1: (9, 2, 0, 0.5),
        7: (9, 3, 0, 1.0),
        14: (9, 4, 0, 1.5),
        28: (9, 6, 0, 8.0),
        90: (9, 8, 0, 14.5),
    }
    assert con.execute(
        "SELECT days_to_imaging_mri FROM marts.index_presentations WHERE patient_id = 'P9'"
    ).fetchone() == (91,)


def test_censoring_at_data_end(tmp_path: Path):
    # Data end day 20 (the latest date in intake). Follow-up 20, 14, 13, 0 days.
    rows = [
        presentation("E1", "A", 0),
        presentation("E2", "B", 6),
        presentation("E3", "C", 7),
        presentation("E4", "D", 20),
    ]
    refs = [referral("R1", "B", 20)]  # day 14 after B's index: counts for W = 14
    con = build(tmp_path, rows, refs)
    assert con.execute(
        "SELECT encounter_id, followup_days FROM marts.index_presentations ORDER BY 1"
    ).fetchall() == [("E1", 20), ("E2", 14), ("E3", 13), ("E4", 0)]
    # eligible when followup_days >= W
    assert summary(con) == {
        1: (3, 0, 1, None),
        7: (3, 0, 1, None),
        14: (2, 1, 2, 14.0),
        28: (0, 0, 4, None),
        90: (0, 0, 4, None),
    }
    run = con.execute("SELECT data_end FROM ops.run_log WHERE run_id = 'test-run'").fetchone()
    assert run == (day(20),)


def test_fixed_data_end_ignores_later_referrals(tmp_path: Path):
    rows = [presentation("E1", "A", 0), presentation("E2", "B", 30)]
    refs = [referral("R1", "A", 10), referral("R2", "A", 25)]
    con = build(tmp_path, rows, refs, data_end=day(20))
    # E2 lies after the data end: not an index; R2 lies after it: not an event.
    assert index_ids(con) == ["E1"]
    assert summary(con)[14] == (1, 1, 0, 10.0)
    assert summary(con)[28] == (0, 0, 1, None)


def test_referrals_before_the_index_are_ignored(tmp_path: Path):
    rows = [presentation("E1", "A", 10), presentation("E2", "B", 10), presentation("X", "Z", 200)]
    refs = [
        referral("R1", "A", 9),  # the day before the index
        referral("R2", "A", 13),
        referral("R3", "B", 0),  # only before
    ]
    con = build(tmp_path, rows, refs)
    assert con.execute(
        "SELECT encounter_id, days_to_imaging_any FROM marts.index_presentations "
        "WHERE encounter_id IN ('E1', 'E2') ORDER BY 1"
    ).fetchall() == [("E1", 3), ("E2", None)]


def test_each_outcome_takes_its_own_first_event(tmp_path: Path):
    rows = [presentation("E1", "A", 10), presentation("X", "Z", 200)]
    refs = [
        referral("R1", "A", 12, modality="xray", body_region="spine"),
        referral("R2", "A", 15, referral_type="biopsy"),
        referral("R3", "A", 20, modality="mri", body_region="spine"),
        referral("R4", "A", 25, modality="ct", body_region="chest"),
        referral("R5", "A", 30, referral_type="consult"),  # an event of no outcome
    ]
    con = build(tmp_path, rows, refs)
    got = con.execute(
        """SELECT days_to_imaging_any, days_to_imaging_spine, days_to_imaging_chest,
                  days_to_imaging_xray, days_to_imaging_ct, days_to_imaging_mri,
                  days_to_biopsy_any
           FROM marts.index_presentations WHERE encounter_id = 'E1'"""
    ).fetchall()
    # R1 (day 12) is the first imaging, spine imaging and x-ray; R3 (day 20) the first
    # MRI, though it is spine imaging too; R4 (day 25) the first chest and CT; R2 (day
    # 15) the first biopsy.
    assert got == [(2, 2, 15, 2, 15, 10, 5)]


def test_too_many_outcomes_is_a_clear_error():
    definition = load_definition()
    extra = tuple(
        dataclasses.replace(definition.outcomes[0], name=f"outcome_{n}") for n in range(63)
    )
    with pytest.raises(UserError, match="lists 63 outcomes"):
        outcome_bits(dataclasses.replace(definition, outcomes=extra))
    assert list(outcome_bits(definition).values()) == [1, 2, 4, 8, 16, 32, 64]


@pytest.mark.parametrize(
    ("section", "where"),
    [
        ("care_gaps", "care_gaps.definitions[1].outcomes[0]"),
        ("overuse", "overuse.outcomes[0]"),
        ("time_to_referral", "time_to_referral.outcome"),
    ],
)
def test_an_outcome_a_mart_names_must_be_defined(tmp_path: Path, section: str, where: str):
    raw = yaml.safe_load((SCHEMAS_DIR / "cohorts.yml").read_text(encoding="utf-8"))
    if section == "care_gaps":
        raw["care_gaps"]["definitions"][1]["outcomes"][0] = "imaging_pet"
    elif section == "overuse":
        raw["overuse"]["outcomes"][0] = "imaging_pet"
    else:
        raw["time_to_referral"]["outcome"] = "imaging_pet"
    assert load_failure(tmp_path, raw).startswith(
        f"{tmp_path / 'cohorts.yml'}: {where} = 'imaging_pet' is not one of "
        "outcomes.definitions (imaging_any, "
    )


def load_failure(tmp_path: Path, raw: dict) -> str:
    """The message load_definition gives for cohorts.yml written from `raw`."""
    path = tmp_path / "cohorts.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_definition(path)
    return str(caught.value)


def test_overuse_needs_an_outcome(tmp_path: Path):
    raw = yaml.safe_load((SCHEMAS_DIR / "cohorts.yml").read_text(encoding="utf-8"))
    raw["overuse"]["outcomes"] = []
    path = tmp_path / "cohorts.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(UserError, match="overuse.outcomes is empty; name at least one outcome"):
        load_definition(path)


def test_a_missing_section_a_mart_needs_is_a_malformed_file(tmp_path: Path):
    raw = yaml.safe_load((SCHEMAS_DIR / "cohorts.yml").read_text(encoding="utf-8"))
    del raw["time_to_referral"]
    path = tmp_path / "cohorts.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_definition(path)
    assert str(caught.value) == (
        f"{path}: the cohort definition is incomplete or malformed (KeyError('time_to_referral'))"
    )


def test_several_episodes_per_patient(tmp_path: Path):
    rows = [
        presentation("E1", "A", 0, tier="high"),
        presentation("E2", "A", 100),
        presentation("E3", "A", 400, tier="moderate"),
        presentation("X", "Z", 600),
    ]
    refs = [referral("R1", "A", 402, modality="ct", body_region="chest")]
    con = build(tmp_path, rows, refs)
    rows = con.execute(
        """SELECT encounter_id, index_date, index_tier, days_to_imaging_any, days_to_imaging_ct,
                  days_to_imaging_chest, days_to_imaging_spine
           FROM marts.index_presentations WHERE patient_id = 'A' ORDER BY index_date"""
    ).fetchall()
    # First event on or after each index: the same referral is day 402 of the first
    # episode and day 2 of the second.
    assert rows == [
        ("E1", day(0), "high", 402, 402, 402, None),
        ("E3", day(400), "moderate", 2, 2, 2, None),
    ]
    # E1 (high) starts its episode's clock; the chest CT on day 402 is 388 days late
    care = con.execute(
        "SELECT care_gap, encounter_id, days_to_imaging, days_since_trigger FROM marts.care_gaps"
    )
    assert care.fetchall() == [("high_without_imaging", "E1", 402, 600)]


def test_episode_max_tier_within_90_days(tmp_path: Path):
    rows = [
        # A: moderate on day 60 counts, urgent on day 91 is too late.
        presentation("A1", "A", 0, tier="low"),
        presentation("A2", "A", 60, tier="moderate"),
        presentation("A3", "A", 91, tier="urgent"),
        # B: high on day 90 exactly counts.
        presentation("B1", "B", 0, tier="low"),
        presentation("B2", "B", 90, tier="high"),
        # C: the index is the highest; a lower one later does not lower it.
        presentation("C1", "C", 0, tier="high"),
        presentation("C2", "C", 5, tier="low"),
        # D: the next episode (day 300) does not reach back into the first.
        presentation("D1", "D", 0, tier="low"),
        presentation("D2", "D", 300, tier="urgent"),
    ]
    con = build(tmp_path, rows)
    assert con.execute(
        "SELECT encounter_id, index_tier, episode_max_tier FROM marts.index_presentations "
        "ORDER BY 1"
    ).fetchall() == [
        ("A1", "low", "moderate"),
        ("B1", "low", "high"),
        ("C1", "high", "high"),
        ("D1", "low", "low"),
        ("D2", "urgent", "urgent"),
    ]
    assert summary(con, "episode_max_tier", "high")[1][0] == 2


def test_episode_max_tier_when_the_washout_is_shorter_than_90_days(tmp_path: Path):
    """A 30-day washout: a presentation within 90 days of an index can start the next
    episode, and the episode's maximum then stops there (the second pass of
    int_episode_max_tier, which the 180-day washout of cohorts.yml never takes)."""
    definition = dataclasses.replace(load_definition(), washout_days=30)
    rows = [
        # A: day 40 is 40 > 30 days after day 0, a new index; A1's episode is A1 alone.
        presentation("A1", "A", 0, tier="low"),
        presentation("A2", "A", 40, tier="urgent"),
        # B: days 20 and 45 are each within 30 days of the previous one: B1's episode,
        # high the highest; day 100 is 55 days after day 45, a new index.
        presentation("B1", "B", 0, tier="low"),
        presentation("B2", "B", 20, tier="high"),
        presentation("B3", "B", 45, tier="moderate"),
        presentation("B4", "B", 100, tier="urgent"),
        # C: a chain 25 days apart stays one episode; day 95 is past the 90 days.
        presentation("C1", "C", 0, tier="low"),
        presentation("C2", "C", 25, tier="low"),
        presentation("C3", "C", 50, tier="low"),
        presentation("C4", "C", 75, tier="low"),
        presentation("C5", "C", 95, tier="high"),
    ]
    con = warehouse(tmp_path, rows)
    build_cohorts(con, definition=definition)
    publish_marts(con, "test-run", definition=definition)
    assert con.execute(
        "SELECT encounter_id, index_tier, episode_max_tier FROM marts.index_presentations "
        "ORDER BY 1"
    ).fetchall() == [
        ("A1", "low", "low"),
        ("A2", "urgent", "urgent"),
        ("B1", "low", "high"),
        ("B4", "urgent", "urgent"),
        ("C1", "low", "low"),
    ]


def test_modality_and_region_from_the_code_when_null(tmp_path: Path):
    rows = [presentation(f"E{i}", f"P{i}", 0) for i in range(3)]
    rows.append(presentation("X", "Z", 100))
    refs = [
        # 72148 is an MRI of the lumbar spine in procedures.csv
        referral("R0", "P0", 1, code="72148", code_system="CPT"),
        # given values win over the code
        referral("R1", "P1", 1, code="72148", code_system="CPT", modality="xray"),
        # 71250 is a CT of the chest; a biopsy row is not imaging
        referral("R2", "P2", 1, code="71250", code_system="CPT", referral_type="biopsy"),
    ]
    con = build(tmp_path, rows, refs)
    got = con.execute(
        """SELECT encounter_id, days_to_imaging_mri, days_to_imaging_spine, days_to_imaging_xray,
                  days_to_imaging_ct, days_to_imaging_chest, days_to_biopsy_any
           FROM marts.index_presentations WHERE encounter_id <> 'X' ORDER BY 1"""
    ).fetchall()
    assert got == [
        ("E0", 1, 1, None, None, None, None),
        ("E1", None, 1, 1, None, None, None),
        ("E2", None, None, None, None, None, 1),
    ]


def test_strata_flags_pattern_and_age_bands(tmp_path: Path):
    rows = [
        presentation("E1", "A", 0, age_years=39, night_pain=True, known_cancer=True),
        presentation("E2", "B", 0, age_years=40, night_pain=True),
        presentation("E3", "C", 0, age_years=75, night_pain=None, smoking_status="current"),
        presentation("E4", "D", 0, age_years=17),
        presentation("X", "Z", 100, back_pain=False, tier="not_back_pain"),
    ]
    con = build(tmp_path, rows)
    counts = dict(
        con.execute(
            """SELECT stratum_type || ':' || stratum_value, n_eligible FROM marts.cohort_summary
               WHERE window_days = 1 AND outcome = 'imaging_any'"""
        ).fetchall()
    )
    assert counts["flag:night_pain"] == 2  # NULL is not TRUE
    assert counts["flag:known_cancer"] == 1
    assert "flag:fever" not in counts
    # known_cancer comes before night_pain in the fixed order
    assert counts["pattern:known_cancer+night_pain"] == 1
    assert counts["pattern:night_pain"] == 1
    assert counts["pattern:none"] == 2
    assert counts["age_band:18-39"] == 1
    assert counts["age_band:40-49"] == 1
    assert counts["age_band:75+"] == 1
    assert counts["age_band:under 18"] == 1
    assert counts["smoking_status:unknown"] == 3
    assert counts["smoking_status:current"] == 1
    # every stratum type except flag adds up to the `all` row
    by_type = con.execute(
        """SELECT stratum_type, sum(n_eligible) FROM marts.cohort_summary
           WHERE window_days = 1 AND outcome = 'imaging_any' AND stratum_type <> 'flag'
           GROUP BY 1"""
    ).fetchall()
    assert {t: int(n) for t, n in by_type} == {
        t: 4
        for t in (
            "all",
            "index_tier",
            "episode_max_tier",
            "age_band",
            "sex",
            "pain_site",
            "smoking_status",
            "pattern",
        )
    }


def test_an_exclusion_flag_must_be_a_flag_of_the_rules(tmp_path: Path):
    raw = yaml.safe_load((SCHEMAS_DIR / "cohorts.yml").read_text(encoding="utf-8"))
    raw["overuse"]["hedis_lbp"]["exclusion_flags"] = ["neuro_symptom", "kown_cancer"]
    assert load_failure(tmp_path, raw).startswith(
        f"{tmp_path / 'cohorts.yml'}: overuse.hedis_lbp.exclusion_flags[1] = 'kown_cancer' is "
        "not a flag of the rules (schemas/red_flags.yml); name one of "
    )
