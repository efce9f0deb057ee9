"""One colour per tier, assigned once, so that every chart of the report agrees.

The tiers and their order are the rules' (schemas/red_flags.yml): colours are given
from the lowest tier up, cool to warm, so the highest tiers are the warmest. The
colours are from the Okabe-Ito palette, which stays distinguishable under the common
colour-vision deficiencies.
"""

from __future__ import annotations

from pipelines.scoring.rules import tier_order

# Okabe-Ito, from the lowest tier up.
TIER_PALETTE: tuple[str, ...] = (
    "#009E73",  # bluish green
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
)
OUTSIDE_COLOUR = "#999999"  # grey: presentations outside the population
ALL_COLOUR = "#000000"  # black: every tier together

# A low tier with completeness under 0.5 is shown as its own category, never hidden
# inside "low". It keeps the low colour and gets a hatch.
POORLY_DOCUMENTED = "low_poorly_documented"
POORLY_DOCUMENTED_LABEL = "Low (poorly documented)"
POORLY_DOCUMENTED_BELOW = 0.5

# Sequential map for shares (documentation completeness): perceptually uniform and
# readable by people with colour-vision deficiencies.
SHARE_COLOURMAP = "cividis"


# The outcome behind the rate chart and the pattern tables; time_to_referral is built
# on the same one (schemas/cohorts.yml).
RATE_OUTCOME = "imaging_any"


def index_tiers() -> list[str]:
    """The tiers an index presentation can have, highest first (not the outside tier)."""
    return tier_order()[:-1]


def tier_colours() -> dict[str, str]:
    """Colour of every tier (the last, outside the population, in grey) and of `all`."""
    tiers = tier_order()
    lowest_first = list(reversed(tiers[:-1]))
    colours = {t: TIER_PALETTE[i % len(TIER_PALETTE)] for i, t in enumerate(lowest_first)}
    return {t: colours[t] for t in tiers[:-1]} | {tiers[-1]: OUTSIDE_COLOUR, "all": ALL_COLOUR}


def tier_label(tier: str) -> str:
    """The label a reader sees for a tier value: its name in words."""
    if tier == POORLY_DOCUMENTED:
        return POORLY_DOCUMENTED_LABEL
    if tier == "all":
        return "All tiers"
    return tier.replace("_", " ").capitalize()
