"""Text and code matches computed once per distinct value, and the history.

Both engines read each distinct complaint and each distinct dx_codes string once,
and join the result back to the rows; these cases check that a row still gets its
own structured values and its own text's matches, whether texts repeat or not.
Expectations are worked out by hand from the clinical rules and red_flags.yml.
"""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.scoring.engines import score_frame
from pipelines.scoring.rules import load_rules
from tests.support.scoring import intake_frame

RULES = load_rules()
ENGINES = ["duckdb", "pandas"]
DEFAULTS = {"encounter_date": "2024-01-10", "age_years": 45, "sex": "F"}


def _by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("encounter_id")


@pytest.mark.parametrize("engine", ENGINES)
def test_rows_sharing_a_complaint_keep_their_own_structured_values(engine: str):
    text = "Low back pain, worse at night. No weight loss."
    rows = [
        # Text only: night pain affirmed, weight loss negated-only, site lumbar.
        {"encounter_id": "E1", "patient_id": "P1", "chief_complaint": text},
        # Same text, structured values win over it.
        {
            "encounter_id": "E2",
            "patient_id": "P2",
            "chief_complaint": text,
            "night_pain": False,
            "unexplained_weight_loss": True,
            "pain_site": "thoracic",
        },
        # Same text again, and a code for weight loss: code beats negated text.
        {"encounter_id": "E3", "patient_id": "P3", "chief_complaint": text, "dx_codes": "R63.4"},
    ]
    out = _by_id(score_frame(intake_frame(rows, DEFAULTS), engine, RULES))
    assert out.loc["E1", "night_pain"] == True  # noqa: E712 (nullable boolean)
    assert out.loc["E1", "unexplained_weight_loss"] == False  # noqa: E712
    assert out.loc["E1", "pain_site"] == "lumbar"
    assert out.loc["E2", "night_pain"] == False  # noqa: E712
    assert out.loc["E2", "unexplained_weight_loss"] == True  # noqa: E712
    assert out.loc["E2", "pain_site"] == "thoracic"
    assert out.loc["E3", "night_pain"] == True  # noqa: E712
    assert out.loc["E3", "unexplained_weight_loss"] == True  # noqa: E712
    # E1: night_pain 1 -> moderate. E2: weight loss 2 + thoracic 1 -> moderate
    # (age 45: no age_50_plus). E3: night_pain 1 + weight loss 2 -> moderate.
    assert out["score"].to_dict() == {"E1": 1, "E2": 3, "E3": 3}
    assert out["tier"].to_dict() == {"E1": "moderate", "E2": "moderate", "E3": "moderate"}


@pytest.mark.parametrize("engine", ENGINES)
def test_null_and_empty_text_and_codes_match_nothing(engine: str):
    rows = [
        {"encounter_id": "E1", "patient_id": "P1", "back_pain": True},
        {"encounter_id": "E2", "patient_id": "P2", "back_pain": True, "chief_complaint": ""},
        {"encounter_id": "E3", "patient_id": "P3", "back_pain": True, "dx_codes": ""},
        # Shares E1's NULL text, but has a code: only E4 gets fatigue.
        {"encounter_id": "E4", "patient_id": "P4", "back_pain": True, "dx_codes": "R53.83"},
    ]
    out = _by_id(score_frame(intake_frame(rows, DEFAULTS), engine, RULES))
    assert out["fatigue"].isna().tolist() == [True, True, True, False]
    assert out.loc["E4", "fatigue"] == True  # noqa: E712
    assert out["pain_site"].tolist() == ["unspecified"] * 4
    assert out["tier"].tolist() == ["low", "low", "low", "low"]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_text_distinct(engine: str):
    """No complaint repeats: each row is matched on its own text (the worst case)."""
    rows, expected = [], {}
    for i in range(24):
        fever = ["fever", "no fever", "denies fever but febrile"][i % 3]
        site = ["upper back pain", "low back pain", "back pain"][(i // 3) % 3]
        rows.append(
            {
                "encounter_id": f"E{i:02d}",
                "patient_id": f"P{i:02d}",
                "chief_complaint": f"Visit {i}: {site} and {fever}",
            }
        )
        expected[f"E{i:02d}"] = (
            [True, False, True][i % 3],
            ["thoracic", "lumbar", "unspecified"][(i // 3) % 3],
        )
    out = _by_id(score_frame(intake_frame(rows, DEFAULTS), engine, RULES))
    assert out["back_pain"].tolist() == [True] * 24
    got = {k: (bool(v.fever), v.pain_site) for k, v in out.iterrows()}
    assert got == expected


@pytest.mark.parametrize("engine", ENGINES)
def test_history_does_not_cross_patients(engine: str):
    """A patient's first visit has no previous one, even right after another patient's rows."""
    rows = [
        {"encounter_id": "A1", "patient_id": "PA", "encounter_date": "2024-01-01"},
        {"encounter_id": "A2", "patient_id": "PA", "encounter_date": "2024-01-20"},
        {"encounter_id": "A3", "patient_id": "PA", "encounter_date": "2024-02-01"},
        {"encounter_id": "B1", "patient_id": "PB", "encounter_date": "2024-02-02"},
        {"encounter_id": "B2", "patient_id": "PB", "encounter_date": "2024-02-03"},
    ]
    rows = [{**r, "back_pain": True, "age_years": 30} for r in rows]
    out = _by_id(score_frame(intake_frame(rows, DEFAULTS), engine, RULES))
    # PA: third back-pain visit within 90 days -> repeat_presentation (moderate);
    # PB: only two visits, its count does not include PA's three.
    assert out["repeat_presentation"].to_dict() == {
        "A1": False,
        "A2": False,
        "A3": True,
        "B1": False,
        "B2": False,
    }
    assert out["tier"].to_dict() == {
        "A1": "low",
        "A2": "low",
        "A3": "moderate",
        "B1": "low",
        "B2": "low",
    }


def test_pick_keeps_nulls_from_the_side_it_takes():
    from pipelines.scoring.predicates import pick

    condition = pd.Series([True, True, False, False]).to_numpy()
    for dtype, a, b, expected in [
        (
            "boolean",
            [pd.NA, True, True, False],
            [False, False, pd.NA, True],
            [pd.NA, True, pd.NA, True],
        ),
        ("Int64", [1, pd.NA, 3, 4], [pd.NA, 6, 7, pd.NA], [1, pd.NA, 7, pd.NA]),
        ("string", ["a", None, "c", "d"], [None, "f", "g", None], ["a", None, "g", None]),
    ]:
        got = pick(condition, pd.Series(a, dtype=dtype), pd.Series(b, dtype=dtype))
        assert str(got.dtype) == dtype
        assert got.isna().tolist() == pd.Series(expected, dtype=dtype).isna().tolist()
        assert got.dropna().tolist() == pd.Series(expected, dtype=dtype).dropna().tolist()


@pytest.mark.parametrize("engine", ENGINES)
def test_sentences_keep_their_own_negation_and_commas_do_not_end_it(engine: str):
    rows = [
        # Complaints made of the same words in other combinations: a cue negates
        # mentions in its own sentence only; a comma does not end its scope.
        {"encounter_id": "E1", "patient_id": "P1", "chief_complaint": "No fever, cough"},
        {"encounter_id": "E2", "patient_id": "P2", "chief_complaint": "Denies cough. Fever"},
        {"encounter_id": "E3", "patient_id": "P3", "chief_complaint": "no fever cough"},
        {"encounter_id": "E4", "patient_id": "P4", "chief_complaint": "cough;no fever,cough"},
        {"encounter_id": "E5", "patient_id": "P5", "chief_complaint": "fever, no fever"},
    ]
    out = _by_id(score_frame(intake_frame(rows, DEFAULTS), engine, RULES))
    # E1 "No fever, cough": "no" reaches across the comma to cough. E4: the first
    # cough is before the ";" (a sentence end), so affirmed. E5: the first fever is
    # before the cue.
    assert out["fever"].tolist() == [False, True, False, False, True]
    assert out["persistent_cough"].tolist() == [False, False, False, True, pd.NA]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_empty_intake_scores_to_no_rows(engine: str):
    """A header-only file (or one whose every row was quarantined) gives an empty table
    with every output column, not an error."""
    empty = intake_frame([{"encounter_id": "E1", "patient_id": "P1", **DEFAULTS}]).iloc[:0]
    out = score_frame(empty, engine, RULES)
    assert len(out) == 0
    assert list(out.columns) == RULES.output_columns
