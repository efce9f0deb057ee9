"""The rule files that name the red flags must name the same ones, in the same order."""

from __future__ import annotations

import yaml

from pipelines.cohorts.definition import load_definition
from pipelines.scoring.rules import load_rules
from tests.support import SCHEMAS_DIR

# The score of the clinical rules (version 2), written out by hand in its order.
CLINICAL_SCORE = {
    "known_cancer": 4, "hemoptysis": 3, "bladder_bowel_dysfunction": 3, "limb_weakness": 3,
    "unexplained_weight_loss": 2, "suspected_cancer": 2, "night_pain": 1, "rest_pain": 1,
    "progressive": 1, "thoracic_pain": 1, "strain_pain": 1, "spinal_tenderness": 1,
    "pain_persistent": 1, "age_50_plus": 1, "ever_smoked": 1,
    "persistent_cough": 1, "dyspnea": 1, "chest_pain": 1, "fatigue": 1, "appetite_loss": 1,
    "fever": 1, "limb_numbness": 1, "limb_tingling": 1, "repeat_presentation": 1,
}  # fmt: skip


def test_weights_are_the_clinical_score():
    raw = yaml.safe_load((SCHEMAS_DIR / "red_flags.yml").read_text(encoding="utf-8"))
    assert raw["score"]["weights"] == CLINICAL_SCORE
    assert list(raw["score"]["weights"]) == list(CLINICAL_SCORE)


def test_cohort_red_flags_and_tiers_are_the_rules():
    """The cohort definition takes both from the rules, in their order."""
    definition = load_definition()
    assert list(definition.red_flags) == list(CLINICAL_SCORE)
    assert list(definition.tiers) == [
        "emergency",
        "urgent",
        "high",
        "moderate",
        "low",
        "not_back_pain",
    ]


def test_every_red_flag_is_an_output_column_of_scoring():
    columns = set(load_rules().output_columns)
    assert set(CLINICAL_SCORE) <= columns
