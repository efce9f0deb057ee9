"""The synthetic population's parameters (`profile.yml`), checked against the schemas.

The generator takes every rate, phrase and code from this profile, so changing
the population is an edit to data. Loading checks that the profile names exactly
the symptom columns of the intake contract and that each code belongs to the
value set it claims, so the generated files keep meaning what the scorer reads.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipelines.contracts import load_contract
from pipelines.value_sets import matches, value_set_names

PROFILE_PATH = Path(__file__).with_name("profile.yml")

# Sections of the profile that are probability distributions (must sum to 1).
_DISTRIBUTIONS: tuple[tuple[str, ...], ...] = (
    ("patients", "sex"),
    ("patients", "smoking"),
    ("cancer", "kind"),
    ("pain_site", "all"),
    ("pain_site", "cancer"),
    ("documentation", "mode"),
    ("referrals", "cancer_imaging_kinds"),
    ("referrals", "representation"),
)


class ProfileError(ValueError):
    """A profile.yml that the generator cannot use."""


def symptom_names() -> list[str]:
    """The symptom columns of the intake contract, in contract order."""
    return [c.name for c in load_contract("intake").columns if c.symptom]


@cache
def load_profile(path: Path = PROFILE_PATH) -> dict[str, Any]:
    profile = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    check_profile(profile, path)
    return profile


def check_profile(profile: dict[str, Any], path: Path) -> None:
    """Fail loudly when the profile and the schemas disagree."""
    symptoms = symptom_names()
    if list(profile["symptoms"]) != symptoms:
        raise ProfileError(f"{path}: symptoms must be the intake symptom columns {symptoms}")
    text_features = list(profile["text"]["symptoms"])
    if sorted(text_features) != sorted(["prior_cancer", *symptoms]):
        raise ProfileError(f"{path}: text.symptoms must cover prior_cancer and every symptom")
    intake = load_contract("intake")
    for name in profile["documentation"]["structured_null"]:
        if name not in intake:
            raise ProfileError(f"{path}: structured_null names unknown column {name!r}")
    for name in profile["pain_site"]["all"]:
        if name not in intake.column("pain_site").allowed:
            raise ProfileError(f"{path}: pain site {name!r} is not allowed by the contract")
    known_sets = set(value_set_names())
    for name, codes in profile["codes"].items():
        if name not in known_sets:
            raise ProfileError(f"{path}: codes.{name} names no value set")
        for code in codes:
            if not matches(code, name):
                raise ProfileError(f"{path}: code {code} is not in value set {name}")
    referrals = load_contract("referrals")
    for kind, (rtype, modality, region) in profile["referrals"]["kind_definitions"].items():
        if (
            rtype not in referrals.column("referral_type").allowed
            or modality not in referrals.column("modality").allowed
            or region not in referrals.column("body_region").allowed
        ):
            raise ProfileError(f"{path}: referral kind {kind} uses values outside the contract")
    known_kinds = set(profile["referrals"]["kind_definitions"])
    rp = profile["referrals"]
    used_kinds = {
        *[k for d in rp["kinds"].values() for k in d],
        *rp["cancer_imaging_kinds"],
        *[k for d in rp["biopsy_kinds"].values() for k in d],
        *rp["false_alarm_kinds"].values(),
    }
    if used_kinds - known_kinds:
        raise ProfileError(f"{path}: referral kinds {sorted(used_kinds - known_kinds)} undefined")
    if set(profile["onset_flags"]) - set(symptoms):
        raise ProfileError(f"{path}: onset_flags must be symptom columns")
    groups = [
        *[(("referrals", "kinds", risk), d) for risk, d in profile["referrals"]["kinds"].items()],
        *[
            (("referrals", "urgency", risk), d)
            for risk, d in profile["referrals"]["urgency"].items()
        ],
        *[
            (("referrals", "biopsy_kinds", k), d)
            for k, d in profile["referrals"]["biopsy_kinds"].items()
        ],
    ]
    for keys in _DISTRIBUTIONS:
        node: Any = profile
        for key in keys:
            node = node[key]
        groups.append((keys, node))
    for keys, dist in groups:
        if not np.isclose(sum(dist.values()), 1.0):
            raise ProfileError(f"{path}: {'.'.join(keys)} must sum to 1")
