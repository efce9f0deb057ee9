"""Load schemas/red_flags.yml into rule trees both engines evaluate.

The file is the single source of the scoring logic. The rules version stored with
every scored row, in ops and in every extract's manifest is a hash of the rule files
a command actually used (the rules, the text cue lexicon and the value sets, a site's
own where it has them), so a site's change shows in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipelines import codes, resources
from pipelines.errors import UserError
from pipelines.scoring import predicates as p
from pipelines.scoring.context import Lexicon, lexicon_file, read_lexicon
from pipelines.value_sets import load_value_sets, matches, value_set, value_set_files

RULES_FILE = "schemas/red_flags.yml"

# Intake columns carried into the rules besides the 17 booleans and pain_site.
ID_COLUMNS = ("encounter_id", "patient_id", "encounter_date", "age_years")
INPUT_COLUMNS = ("smoking_status", "pain_duration_days", "pain_score")
# Helper columns of the history stage (see `history:` in red_flags.yml).
HISTORY_COLUMNS = (
    "days_since_previous",
    "previous_pain_score",
    "n_back_pain_window",
    "episode_days",
)
# Value sets named `to_icd10cm:<ICD-10-CM code>` hold the codes of other systems
# that map to that code (the crosswalk).
CROSSWALK = "to_icd10cm:"


@dataclass(frozen=True)
class Ever:
    """A history helper that is TRUE once `here` held at this or an earlier presentation,
    or a diagnoses row dated on or before this date has a code of `value_set`."""

    name: str
    here: p.Expr
    value_set: str | None
    icd10_pattern: str | None  # over one normalised ICD-10-CM code
    snomed_codes: tuple[str, ...]  # normalised SNOMED codes that map into the value set


@dataclass(frozen=True)
class Feature:
    name: str
    expr: p.Expr
    type: str  # "boolean" | "integer" | "string"
    evidence: str


@dataclass(frozen=True)
class RuleSet:
    path: Path
    version: str
    lexicon: Lexicon
    phrases: dict[str, list[str]]
    code_patterns: dict[str, str]
    effective: list[Feature]  # back_pain, pain_site, then the other 16 booleans
    symptom_names: list[str]  # the 17 booleans of completeness
    window_days: int
    washout_days: int
    ever: list[Ever]
    features: list[Feature]
    tier: p.Expr
    tier_names: list[str]
    tier_actions: dict[str, str]  # every tier's expected action, the outside tier's too
    imaging_tiers: list[str]  # the tiers whose expected action is imaging
    score: p.Expr
    score_features: list[str]
    completeness: p.Expr

    @property
    def output_columns(self) -> list[str]:
        """The columns of features.presentation_flags, in order."""
        return [
            *ID_COLUMNS,
            *(f.name for f in self.effective),
            *(f.name for f in self.features),
            "tier",
            "score",
            "completeness",
            "rules_version",
        ]

    def env(self) -> p.Env:
        return p.Env(code_patterns=self.code_patterns)


def rule_files(path: Path) -> list[Path]:
    """The files the rules are made of: the rule file, the text cue lexicon and the value
    sets it reads."""
    return [path, lexicon_file(), *value_set_files()]


def code_pattern(name: str) -> str:
    """A regex over normalised dx_codes (codes joined by ';') for one value set."""
    alternatives = sorted(
        re.escape(e.normalized) + ("[^;]*" if e.is_prefix else "") for e in value_set(name)
    )
    return f"(?:^|;)(?:{'|'.join(alternatives)})(?:;|$)"


def _effective_symptom(name: str, codes: str | None, phrases: str, *, never_null: bool) -> p.Expr:
    """Structured > code or affirmed text > negated-only text > NULL (`symptoms:`)."""
    positive: p.Expr = p.TextRead(phrases, "affirms")
    if codes:
        positive = p.Any_([p.InValueSet(codes), positive])
    if never_null:
        return p.Coalesce([p.Column(name), positive])
    derived = p.When(
        [(positive, p.Literal(True)), (p.TextRead(phrases, "negates"), p.Literal(False))],
        p.Literal(None),
    )
    return p.Coalesce([p.Column(name), derived])


def _pain_site(raw: dict) -> p.Expr:
    branches = []
    for entry in raw["order"]:
        found = p.Any_([p.InValueSet(entry["codes"]), p.TextRead(entry["phrases"], "affirms")])
        branches.append((found, p.Literal(str(entry["site"]))))
    return p.Coalesce([p.Column("pain_site"), p.When(branches, p.Literal(str(raw["otherwise"])))])


def load_rules(path: Path | str | None = None) -> RuleSet:
    """The rules of this command (the site's rule file where it has one, or `path`)."""
    path = Path(path) if path is not None else resources.active().path(RULES_FILE)
    return read_rules(path, tuple(rule_files(path)))


@cache
def read_rules(path: Path, files: tuple[Path, ...]) -> RuleSet:
    """Read and check the rule file; errors name the file and the rule."""
    raw = resources.read_yaml(path)
    try:
        return _build(path, raw, resources.fingerprint(files))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: invalid rules: {exc}") from exc


def tier_order() -> list[str]:
    """The tiers, highest first, then the tier of presentations outside the population."""
    return load_rules().tier_names


def tier_actions() -> dict[str, str]:
    """The expected action of each tier (the rule file's `action`)."""
    return load_rules().tier_actions


def imaging_tiers() -> list[str]:
    """The tiers whose expected action is imaging, highest first."""
    return load_rules().imaging_tiers


def red_flags() -> list[str]:
    """The red flags: the weighted features of the score, in the rule file's order."""
    return load_rules().score_features


def _build(path: Path, raw: dict, version: str) -> RuleSet:
    phrases = {k: [str(x) for x in v] for k, v in raw["phrases"].items()}
    value_sets_used: set[str] = set()

    effective: list[Feature] = []
    symptom_names: list[str] = []
    for s in raw["symptoms"]:
        name = s["name"]
        if s["phrases"] not in phrases:
            raise ValueError(f"symptom {name}: no phrases named {s['phrases']!r}")
        if s.get("codes"):
            value_sets_used.add(s["codes"])
        expr = _effective_symptom(
            name, s.get("codes"), s["phrases"], never_null=(name == "back_pain")
        )
        effective.append(Feature(name, expr, "boolean", s["evidence"]))
        symptom_names.append(name)
    if "back_pain" not in symptom_names:
        raise ValueError("symptoms must include back_pain")
    site = raw["pain_site"]
    value_sets_used.update(e["codes"] for e in site["order"])
    effective.insert(1, Feature("pain_site", _pain_site(site), "string", site["evidence"]))

    history_known = set(ID_COLUMNS + INPUT_COLUMNS) | {f.name for f in effective}
    ever = [_ever(e, history_known) for e in raw["history"].get("ever", [])]
    for e in ever:
        value_sets_used.update(_value_sets(e.here))

    features: list[Feature] = []
    for f in raw["features"]:
        expr = p.parse(f["rule"], f"feature {f['name']}")
        expr = p.substitute(expr, {e.name: e.expr for e in features})
        kind = "integer" if f.get("type") == "integer" else "boolean"
        features.append(Feature(f["name"], expr, kind, f["evidence"]))
    known = set(ID_COLUMNS + INPUT_COLUMNS + HISTORY_COLUMNS) | {f.name for f in effective}
    known |= {e.name for e in ever}
    for f in features:
        unknown = f.expr.columns() - known
        if unknown:
            raise ValueError(f"feature {f.name} uses unknown column(s) {sorted(unknown)}")
        value_sets_used.update(_value_sets(f.expr))
    known |= {f.name for f in features}

    tiers = raw["tiers"]
    order = tiers["order"]
    if order[-1]["when"] is not True:
        raise ValueError("the last tier must have `when: true` (back pain, none of the above)")
    branches: list[tuple[p.Expr, p.Expr]] = [
        (p.Not(p.IsTrue(p.Column(tiers["population"]))), p.Literal(str(tiers["outside"])))
    ]
    for t in order[:-1]:
        when = p.parse(t["when"], f"tier {t['name']}")
        unknown = when.columns() - known
        if unknown:
            raise ValueError(f"tier {t['name']} uses unknown column(s) {sorted(unknown)}")
        branches.append((when, p.Literal(str(t["name"]))))
    tier = p.When(branches, p.Literal(str(order[-1]["name"])))

    weights = raw["score"]["weights"]
    unknown = set(weights) - known
    if unknown:
        raise ValueError(f"score weights name unknown feature(s) {sorted(unknown)}")
    score = p.WeightedCount([p.Column(n) for n in weights], [int(w) for w in weights.values()])
    completeness = p.CountKnown([p.Column(n) for n in symptom_names])

    code_patterns = {name: code_pattern(name) for name in sorted(value_sets_used)}
    return RuleSet(
        path=path,
        version=version,
        lexicon=read_lexicon(lexicon_file()),
        phrases=phrases,
        code_patterns=code_patterns,
        effective=effective,
        symptom_names=symptom_names,
        window_days=int(raw["history"]["window_days"]),
        washout_days=int(raw["history"]["washout_days"]),
        ever=ever,
        features=features,
        tier=tier,
        tier_names=[str(t["name"]) for t in order] + [str(tiers["outside"])],
        tier_actions={str(t["name"]): str(t["action"]) for t in order}
        | {str(tiers["outside"]): str(tiers["outside_action"])},
        imaging_tiers=[str(t["name"]) for t in order if t.get("expects_imaging")],
        score=score,
        score_features=list(weights),
        completeness=completeness,
    )


def _ever(raw: dict, known: set[str]) -> Ever:
    name = str(raw["name"])
    here = p.parse(raw["here"], f"history helper {name}")
    unknown = here.columns() - known
    if unknown:
        raise ValueError(f"history helper {name} uses unknown column(s) {sorted(unknown)}")
    vs = raw.get("diagnoses")
    if not vs:
        return Ever(name, here, None, None, ())
    value_set(vs)  # an unknown name is an error here, not at the first diagnoses file
    snomed = sorted(
        {
            codes.normalize(e.code)
            for e in load_value_sets()
            if e.value_set.startswith(CROSSWALK)
            and e.code_system == "SNOMED"
            and matches(e.value_set[len(CROSSWALK) :], vs)
        }
    )
    return Ever(name, here, vs, code_pattern(vs), tuple(snomed))


def _value_sets(expr: p.Expr) -> set[str]:
    found = {expr.value_set} if isinstance(expr, p.InValueSet) else set()
    for child in expr.children():
        found |= _value_sets(child)
    return found
