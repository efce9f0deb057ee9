"""One colour per tier, defined once, so that every chart of the report agrees.

The colours are from the Okabe-Ito palette, which stays distinguishable under the
common colour-vision deficiencies; the order of tiers is the clinical one, highest first.
"""

from __future__ import annotations

TIERS: tuple[str, ...] = ("urgent", "high", "moderate", "low", "not_back_pain")

TIER_COLOURS: dict[str, str] = {
    "urgent": "#D55E00",  # vermillion
    "high": "#E69F00",  # orange
    "moderate": "#0072B2",  # blue
    "low": "#009E73",  # bluish green
    "not_back_pain": "#999999",  # grey
    "all": "#000000",  # black: every tier together
}

TIER_LABELS: dict[str, str] = {
    "urgent": "Urgent",
    "high": "High",
    "moderate": "Moderate",
    "low": "Low",
    "not_back_pain": "Not back pain",
    "all": "All tiers",
}

# CLINICAL.md: a low tier with completeness under 0.5 is shown as its own category,
# never hidden inside "low". It keeps the low colour and gets a hatch.
POORLY_DOCUMENTED = "low_poorly_documented"
POORLY_DOCUMENTED_LABEL = "Low (poorly documented)"
POORLY_DOCUMENTED_BELOW = 0.5

# Sequential map for shares (documentation completeness): perceptually uniform and
# readable by people with colour-vision deficiencies.
SHARE_COLOURMAP = "cividis"


# The outcome behind the rate chart and the pattern tables; time_to_referral is built
# on the same one (schemas/cohorts.yml).
RATE_OUTCOME = "imaging_any"


def tier_label(tier: str) -> str:
    """The label a reader sees for a tier value, or the value itself when it is unknown."""
    if tier == POORLY_DOCUMENTED:
        return POORLY_DOCUMENTED_LABEL
    return TIER_LABELS.get(tier, tier)
