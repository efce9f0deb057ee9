"""Imaging and biopsy orders, and cancer diagnoses, for one chunk.

Orders follow the risk a clinician would see in the true symptoms
(`clinician_risk`), but only with the profile's probabilities and delays: some
urgent and high-risk presentations are not imaged in time (care gaps), some
low-risk ones are imaged within 28 days (overuse). Patients with cancer get a
work-up at their onset visit: imaging, then mostly a biopsy after it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.contracts import load_contract
from pipelines.synth.intake import Numbering, labels, phrases
from pipelines.synth.population import (
    BONE_METASTASIS,
    LUNG,
    LUNG_WITH_METASTASIS,
    NO_DATE,
    Population,
    choose,
    uniform,
)
from pipelines.value_sets import load_value_sets

RISKS = ("urgent", "high", "moderate", "low", "other")
URGENT, HIGH, MODERATE, LOW, OTHER = range(5)
LUNG_SYMPTOMS = (
    "persistent_cough",
    "fatigue",
    "dyspnea",
    "chest_pain",
    "unexplained_weight_loss",
    "appetite_loss",
)
NEURO_SYMPTOMS = ("limb_numbness", "limb_tingling", "limb_weakness", "bladder_bowel_dysfunction")


def clinician_risk(pop: Population, profile: dict[str, Any]) -> np.ndarray:
    """The risk a clinician sees in the true findings of each presentation (RISKS index).

    It follows the rules' tiers on the true symptoms but ignores the patient's
    history, so the scored tier (from the documentation and history) and the
    orders disagree now and then, as in practice.
    """
    s = pop.symptoms
    age40, age50 = pop.age >= 40, pop.age >= 50
    ever = pop.ever_smoked[pop.patient]
    neuro = np.logical_or.reduce([s[n] for n in NEURO_SYMPTOMS])
    n_lung = np.sum([s[n] for n in LUNG_SYMPTOMS], axis=0)
    thoracic = pop.site == list(profile["pain_site"]["all"]).index("thoracic")
    urgent = s["bladder_bowel_dysfunction"] | s["limb_weakness"] | (neuro & pop.prior_cancer)
    high = (
        pop.prior_cancer
        | (s["hemoptysis"] & age40)
        | (age40 & ((n_lung >= 2) | (ever & (n_lung >= 1))))
        | (age50 & s["unexplained_weight_loss"])
    )
    moderate = (
        s["night_pain"]
        | s["rest_pain"]
        | s["progressive_pain"]
        | thoracic
        | s["unexplained_weight_loss"]
        | s["hemoptysis"]
        | neuro
        | s["fever"]
        | ((pop.pain_duration >= 28) & age50)
    )
    risk = np.select([urgent, high, moderate], [URGENT, HIGH, MODERATE], LOW)
    return np.where(pop.back_pain, risk, OTHER)


@cache
def procedure_codes() -> dict[tuple[str, str, str | None], list[tuple[str, str]]]:
    """(referral_type, modality, body_region) -> [(code, code_system)], from procedures.csv."""
    # Only codes a referral may carry: the value sets also hold source-text phrases
    # and code systems (HCPCS, DICOM) that the adapters translate before ingest.
    allowed = set(load_contract("referrals").column("code_system").allowed or ())
    entries = [e for e in load_value_sets() if e.code_system in allowed]
    by_code: dict[tuple[str, str], dict[str, str]] = {}
    for e in entries:
        for prefix in ("referral_", "modality_", "region_"):
            if e.value_set.startswith(prefix):
                key = (e.code, e.code_system)
                by_code.setdefault(key, {})[prefix] = e.value_set.removeprefix(prefix)
    groups: dict[tuple[str, str, str | None], list[tuple[str, str]]] = {}
    for key, parts in sorted(by_code.items()):
        if "referral_" in parts and "modality_" in parts:
            group = (parts["referral_"], parts["modality_"], parts.get("region_"))
            groups.setdefault(group, []).append(key)
    return groups


def code_system_of(name: str) -> str:
    """The code system of a value set (diagnosis codes are written in it)."""
    systems = {e.code_system for e in load_value_sets() if e.value_set == name}
    if len(systems) != 1:
        raise ValueError(f"value set {name} must have one code system, has {sorted(systems)}")
    return systems.pop()


def _kind_codes(profile: dict[str, Any]) -> list[list[tuple[str, str]]]:
    """Codes for each referral kind, in profile order; a kind of region `other` takes
    the codes that have no region in the value sets (bone scan, PET-CT)."""
    groups = procedure_codes()
    out = []
    for kind, (rtype, modality, region) in profile["referrals"]["kind_definitions"].items():
        codes = groups.get((rtype, modality, None if region == "other" else region))
        if not codes:
            raise ValueError(f"no procedure code in schemas/value_sets for referral kind {kind}")
        out.append(codes)
    return out


def _draw_kind(
    rng: np.random.Generator, dists: dict[str, dict[str, float]], group: np.ndarray, kinds: list
) -> np.ndarray:
    """A referral kind (index into `kinds`) per row, from the distribution of its group."""
    out = np.zeros(len(group), dtype=np.int64)
    for g, dist in enumerate(dists.values()):
        rows = group == g
        mapping = np.array([kinds.index(k) for k in dist])
        out[rows] = mapping[choose(rng, dist, int(rows.sum()))]
    return out


def generate_orders(
    rng: np.random.Generator,
    pop: Population,
    profile: dict[str, Any],
    numbering: Numbering,
    *,
    end_day: int,
) -> dict[str, pa.Array]:
    """The referral columns of one chunk, sorted by patient and date."""
    rp = profile["referrals"]
    kinds = list(rp["kind_definitions"])
    rows = pop.n_rows
    risk = clinician_risk(pop, profile)
    window = np.array([rp["window_days"][r] for r in RISKS])[risk]
    on_time = uniform(rng, rows) < np.array([rp["on_time"][r] for r in RISKS])[risk]
    delay = np.where(
        on_time,
        np.floor(rng.random(rows) * (window + 1)),
        window + 1 + np.floor(rng.random(rows) * (rp["late_max_days"] - window)),
    ).astype(np.int64)
    imaged = uniform(rng, rows) < np.array([rp["imaging"][r] for r in RISKS])[risk]
    routine_kind = _draw_kind(rng, rp["kinds"], risk, kinds)

    # Cancer work-up at onset: imaging, and a biopsy mostly after it.
    onset = pop.onset
    work_up = onset & (uniform(rng, rows) < rp["cancer_imaging"])
    work_up_delay = np.floor(rng.random(rows) * (rp["cancer_imaging_max_delay_days"] + 1))
    work_up_day = pop.day + work_up_delay.astype(np.int64)
    work_up_kind = _draw_kind(
        rng, {"all": rp["cancer_imaging_kinds"]}, np.zeros(rows, np.int64), kinds
    )
    biopsy_gap = rng.integers(rp["biopsy_delay_min_days"], rp["biopsy_delay_max_days"] + 1, rows)
    biopsied = np.where(
        work_up,
        uniform(rng, rows) < rp["cancer_biopsy"],
        onset & (uniform(rng, rows) < rp["biopsy_without_imaging"]),
    )
    biopsy_day = np.where(work_up, work_up_day + biopsy_gap, pop.day)
    kind_row = pop.cancer_kind[pop.patient]
    organ = np.where(kind_row == BONE_METASTASIS, 1, 0)
    cancer_biopsy_kind = _draw_kind(rng, rp["biopsy_kinds"], organ, kinds)

    # False alarms: a biopsy after imaging of a high or urgent presentation without cancer.
    routine_day = pop.day + delay
    false_alarm = (
        imaged & (risk <= HIGH) & (kind_row == 0) & (uniform(rng, rows) < rp["false_alarm_biopsy"])
    )
    # The biopsy kind follows the body region of the imaging before it.
    by_region = rp["false_alarm_kinds"]
    follow_up = np.array(
        [kinds.index(by_region[rp["kind_definitions"][k][2]]) for k in kinds], dtype=np.int64
    )
    false_alarm_kind = follow_up[routine_kind]

    # One candidate order per (presentation, source); keep those inside the period.
    patient = np.concatenate([pop.patient] * 4)
    day = np.concatenate([routine_day, work_up_day, biopsy_day, routine_day + biopsy_gap])
    kind = np.concatenate([routine_kind, work_up_kind, cancer_biopsy_kind, false_alarm_kind])
    keep = np.concatenate([imaged, work_up, biopsied, false_alarm]) & (day <= end_day)
    source_risk = np.concatenate([risk, np.full(rows, URGENT), np.full(rows, HIGH), risk])
    patient, day, kind, source_risk = patient[keep], day[keep], kind[keep], source_risk[keep]
    order = np.lexsort((kind, day, patient))
    patient, day, kind, source_risk = patient[order], day[order], kind[order], source_risk[order]
    return _referral_columns(rng, profile, numbering, patient, day, kind, source_risk)


def _referral_columns(
    rng: np.random.Generator,
    profile: dict[str, Any],
    numbering: Numbering,
    patient: np.ndarray,
    day: np.ndarray,
    kind: np.ndarray,
    risk: np.ndarray,
) -> dict[str, pa.Array]:
    """Write each order as a clinic would: full, code only, or without a code."""
    rp = profile["referrals"]
    n = len(patient)
    definitions = list(rp["kind_definitions"].values())
    kind_codes = _kind_codes(profile)
    sizes = np.array([len(c) for c in kind_codes])
    offsets = np.cumsum(sizes) - sizes
    flat = [c for codes in kind_codes for c in codes]
    code_index = offsets[kind] + np.floor(rng.random(n) * sizes[kind]).astype(np.int64)
    form = choose(rng, rp["representation"], n)
    forms = list(rp["representation"])
    has_code = form != forms.index("no_code")
    has_modality = form != forms.index("code_only")
    has_region = has_modality & (form != forms.index("no_region"))

    def part(i: int) -> list[str]:
        return sorted({d[i] for d in definitions})

    types, modalities, regions = part(0), part(1), part(2)
    urgency_levels = sorted({u for d in rp["urgency"].values() for u in d})
    urgency = np.zeros(n, dtype=np.int64)
    for r, dist in enumerate(rp["urgency"].values()):
        rows = risk == r
        mapping = np.array([urgency_levels.index(u) for u in dist])
        urgency[rows] = mapping[choose(rng, dist, int(rows.sum()))]
    return {
        "referral_id": numbering.referral_ids(n),
        "patient_id": numbering.patient_ids(patient),
        "referral_date": pa.array(day.astype("datetime64[D]")),
        "referral_type": labels(types, np.array([types.index(d[0]) for d in definitions])[kind]),
        "modality": labels(
            modalities, np.array([modalities.index(d[1]) for d in definitions])[kind], has_modality
        ),
        "body_region": labels(
            regions, np.array([regions.index(d[2]) for d in definitions])[kind], has_region
        ),
        "code": labels([c for c, _ in flat], code_index, has_code),
        "code_system": labels([s for _, s in flat], code_index, has_code),
        "urgency": labels(urgency_levels, urgency, uniform(rng, n) >= rp["urgency_null"]),
    }


def generate_diagnoses(
    rng: np.random.Generator,
    pop: Population,
    profile: dict[str, Any],
    numbering: Numbering,
) -> dict[str, pa.Array]:
    """Cancer diagnoses (ICD-10-CM) of the patients with cancer, after their onset."""
    codes = profile["codes"]
    kind = pop.cancer_kind
    diagnosed = pop.diagnosis_day != NO_DATE
    lung = diagnosed & ((kind == LUNG) | (kind == LUNG_WITH_METASTASIS))
    bone = diagnosed & (kind == BONE_METASTASIS)
    later_bone = pop.metastasis_day != NO_DATE
    patient = np.concatenate(
        [np.flatnonzero(lung), np.flatnonzero(bone), np.flatnonzero(later_bone)]
    )
    day = np.concatenate(
        [pop.diagnosis_day[lung], pop.diagnosis_day[bone], pop.metastasis_day[later_bone]]
    )
    group = np.concatenate(
        [np.zeros(lung.sum(), np.int64), np.ones(bone.sum() + later_bone.sum(), np.int64)]
    )
    order = np.lexsort((group, day, patient))
    patient, day, group = patient[order], day[order], group[order]
    n = len(patient)
    code = phrases(
        rng, [codes["lung_cancer"], codes["bone_metastasis"]], np.ones(n, dtype=bool), group
    )
    return {
        "patient_id": numbering.patient_ids(patient),
        "diagnosis_date": pa.array(day.astype("datetime64[D]")),
        "code": code,
        "code_system": labels([code_system_of("lung_cancer")], np.zeros(n, dtype=np.int64)),
    }
