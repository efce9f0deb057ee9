"""The cohort definition (schemas/cohorts.yml) as a typed object, checked on load.

Names from the file (outcomes, flags, fields) are rendered into SQL as identifiers,
so they are checked to be plain snake_case words here; a bad file fails with the
file and key named, before any SQL runs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from statistics import NormalDist
from typing import Any

import yaml

from pipelines import resources
from pipelines.errors import UserError

COHORTS_FILE = "schemas/cohorts.yml"
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Outcome:
    name: str
    referral_type: str
    modality: str | None
    body_region: str | None


@dataclass(frozen=True)
class CohortDefinition:
    """Everything the SQL models read from cohorts.yml."""

    raw: dict[str, Any]
    version: str
    washout_days: int
    max_tier_days: int
    tiers: tuple[str, ...]  # highest first, then not_back_pain: the rules' (red_flags.yml)
    data_end: date | None
    windows: tuple[int, ...]
    outcomes: tuple[Outcome, ...]
    red_flags: tuple[str, ...]  # the weighted features of the score, in the rules' order
    stratum_types: tuple[str, ...]
    age_bands: tuple[tuple[str, int, int], ...]
    age_band_other: str
    confidence_level: float
    min_cell: int

    @property
    def z(self) -> float:
        """Two-sided normal quantile of the confidence level (1.959963984540054 for 95%)."""
        return NormalDist().inv_cdf(0.5 + self.confidence_level / 2)

    @property
    def outcome_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outcomes)

    def section(self, key: str) -> dict[str, Any]:
        return self.raw[key]


def _identifier(value: object, where: str, path: Path) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise UserError(
            f"{path}: {where} = {value!r} must be a snake_case name (a-z, 0-9, _); fix the file"
        )
    return value


def _positive_int(value: object, where: str, path: Path) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UserError(f"{path}: {where} = {value!r} must be a whole number >= 0; fix the file")
    return value


def load_definition(path: Path | None = None) -> CohortDefinition:
    """Read and check schemas/cohorts.yml (the site's own, or `path`)."""
    from pipelines.scoring.rules import red_flags, tier_order

    path = Path(path) if path is not None else resources.active().path(COHORTS_FILE)
    text = resources.read_text(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raw = resources.read_yaml(path)  # raises with the file, line and column
    try:
        washout = raw["inclusion_rules"][0]
        outcomes = tuple(
            Outcome(
                name=_identifier(o["name"], f"outcomes.definitions[{i}].name", path),
                referral_type=o["referral_type"],
                modality=o.get("modality"),
                body_region=o.get("body_region"),
            )
            for i, o in enumerate(raw["outcomes"]["definitions"])
        )
        strata = raw["strata"]
        data_end = raw["data_end"].get("date")
        definition = CohortDefinition(
            raw=raw,
            version=hashlib.sha256(text.encode()).hexdigest()[:12],
            washout_days=_positive_int(washout["washout_days"], "washout_days", path),
            max_tier_days=_positive_int(raw["episode"]["max_tier_days"], "max_tier_days", path),
            tiers=tuple(tier_order()),
            data_end=date.fromisoformat(str(data_end)) if data_end else None,
            windows=tuple(
                sorted(_positive_int(w, "windows.days", path) for w in raw["windows"]["days"])
            ),
            outcomes=outcomes,
            red_flags=tuple(red_flags()),
            stratum_types=tuple(_identifier(s, "strata.types", path) for s in strata["types"]),
            age_bands=tuple(
                (b["label"], int(b["min"]), int(b["max"])) for b in strata["age_bands"]
            ),
            age_band_other=str(strata["age_band_other"]),
            confidence_level=float(raw["summary"]["confidence_level"]),
            min_cell=_positive_int(raw["disclosure"]["min_cell"], "disclosure.min_cell", path),
        )
        _check_outcome_references(definition, path)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise UserError(
            f"{path}: the cohort definition is incomplete or malformed ({exc!r})"
        ) from exc
    for name in definition.raw["documentation_quality"]["fields"]:
        _identifier(name, "documentation_quality.fields", path)
    _check_exclusion_flags(definition, path)
    if not definition.windows:
        raise UserError(f"{path}: windows.days is empty; give at least one window")
    return definition


def _check_exclusion_flags(definition: CohortDefinition, path: Path) -> None:
    """Every hedis_lbp exclusion flag is a boolean column the rules write into
    features.presentation_flags: a name the rules do not define would fail in SQL with a
    message that does not name this file."""
    from pipelines.scoring.output import sql_types
    from pipelines.scoring.rules import load_rules

    flags = [name for name, type_ in sql_types(load_rules()).items() if type_ == "BOOLEAN"]
    key = "overuse.hedis_lbp.exclusion_flags"
    for i, flag in enumerate(definition.raw["overuse"]["hedis_lbp"]["exclusion_flags"]):
        if _identifier(flag, f"{key}[{i}]", path) not in flags:
            raise UserError(
                f"{path}: {key}[{i}] = {flag!r} is not a flag of the rules "
                f"(schemas/red_flags.yml); name one of {', '.join(flags)}"
            )


def _check_outcome_references(definition: CohortDefinition, path: Path) -> None:
    """Every outcome a mart names is one of outcomes.definitions (a missing section is
    a KeyError, which load_definition reports as a malformed file).

    Said here, because in SQL a name that matches no outcome would not fail: it would
    count no events, and every presentation would look not imaged.
    """
    raw = definition.raw
    references = [
        *(
            (f"care_gaps.definitions[{i}].outcomes[{j}]", outcome)
            for i, gap in enumerate(raw["care_gaps"]["definitions"])
            for j, outcome in enumerate(gap["outcomes"])
        ),
        *((f"overuse.outcomes[{i}]", o) for i, o in enumerate(raw["overuse"]["outcomes"])),
        ("time_to_referral.outcome", raw["time_to_referral"]["outcome"]),
    ]
    if not raw["overuse"]["outcomes"]:
        raise UserError(f"{path}: overuse.outcomes is empty; name at least one outcome")
    for where, name in references:
        if name not in definition.outcome_names:
            raise UserError(
                f"{path}: {where} = {name!r} is not one of outcomes.definitions "
                f"({', '.join(definition.outcome_names)}); fix the file"
            )
