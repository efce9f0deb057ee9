"""Patients and their presentations as they really are, before anyone documents them.

Everything is a numpy array over one chunk of patients (`Population`): one entry
per patient, or one per presentation with `patient` pointing at its patient.
The documentation layer (intake.py) and the orders (orders.py) both read this
truth, so what a record says and what a clinician orders follow the same patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.synth.profile import symptom_names

# Kinds of active cancer; NONE for everyone else.
NONE, LUNG, LUNG_WITH_METASTASIS, BONE_METASTASIS = 0, 1, 2, 3
CANCER_KINDS = ("lung", "lung_with_metastasis", "bone_metastasis")
NO_DATE = np.iinfo(np.int64).max


def choose(rng: np.random.Generator, dist: dict[str, float], size: int) -> np.ndarray:
    """Indices into `list(dist)` drawn with the given probabilities."""
    cumulative = np.cumsum(list(dist.values()))
    return np.minimum(np.searchsorted(cumulative, rng.random(size), side="right"), len(dist) - 1)


def uniform(rng: np.random.Generator, size: int) -> np.ndarray:
    """Uniform [0, 1) draws for comparing with probabilities (float32: half the cost)."""
    return rng.random(size, dtype=np.float32)


@dataclass
class Population:
    """One chunk of patients (arrays of length n) and presentations (length rows)."""

    # per patient
    sex: np.ndarray  # index into profile patients.sex
    smoking: np.ndarray  # index into profile patients.smoking
    ever_smoked: np.ndarray
    cancer_kind: np.ndarray  # NONE, LUNG, LUNG_WITH_METASTASIS, BONE_METASTASIS
    diagnosis_day: np.ndarray  # day number of the cancer diagnosis, NO_DATE if none recorded
    metastasis_day: np.ndarray  # day of a later bone metastasis (lung_with_metastasis)
    # per presentation
    patient: np.ndarray  # index of the patient in this chunk
    day: np.ndarray  # days since 1970-01-01
    age: np.ndarray
    back_pain: np.ndarray
    site: np.ndarray  # index into profile pain_site.all
    pain_score: np.ndarray
    pain_duration: np.ndarray
    prior_cancer: np.ndarray
    active_cancer: np.ndarray  # presentation at or after the cancer's onset
    onset: np.ndarray  # the first red-flag presentation of a patient with cancer
    symptoms: dict[str, np.ndarray]

    @property
    def n_patients(self) -> int:
        return len(self.sex)

    @property
    def n_rows(self) -> int:
        return len(self.patient)


def _age_weight(age: np.ndarray, weights: dict[str, float]) -> np.ndarray:
    return np.select(
        [age < 18, age < 40, age < 60],
        [0.0, weights["under_40"], weights["40_59"]],
        weights["60_plus"],
    )


def generate_population(
    rng: np.random.Generator, n: int, start_day: int, end_day: int, profile: dict[str, Any]
) -> Population:
    """Draw n patients, their visits over [start_day, end_day] and what each visit shows."""
    pp, vp, cp = profile["patients"], profile["visits"], profile["cancer"]

    # Patients.
    sex = choose(rng, pp["sex"], n)
    child = uniform(rng, n) < pp["child_share"]
    adult_age = np.clip(np.rint(rng.normal(pp["adult_age_mean"], pp["adult_age_sd"], n)), 18, 100)
    age_at_start = np.where(child, rng.integers(0, 18, n), adult_age).astype(np.int64)
    birth_day = start_day - np.floor((age_at_start + rng.random(n)) * 365.25).astype(np.int64)
    smoking_levels = list(pp["smoking"])
    smoking = choose(rng, pp["smoking"], n)
    smoking = np.where(age_at_start < 16, smoking_levels.index("never"), smoking)
    back_pain_patient = uniform(rng, n) < pp["back_pain_patient"]

    weight = _age_weight(age_at_start, cp["age_weight"])
    mean_weight = weight[back_pain_patient].mean() if back_pain_patient.any() else 1.0
    p_cancer = cp["prevalence"] * weight / (mean_weight or 1.0)
    has_cancer = back_pain_patient & (uniform(rng, n) < p_cancer)
    cancer_kind = np.where(has_cancer, 1 + choose(rng, cp["kind"], n), NONE)
    lung = (cancer_kind == LUNG) | (cancer_kind == LUNG_WITH_METASTASIS)
    # Lung cancer patients mostly have smoked: former or current in the profile's ratio.
    former, current = pp["smoking"]["former"], pp["smoking"]["current"]
    smoker_level = np.where(
        uniform(rng, n) < former / (former + current),
        smoking_levels.index("former"),
        smoking_levels.index("current"),
    )
    smoking = np.where(lung & (uniform(rng, n) < cp["lung_ever_smoked"]), smoker_level, smoking)
    ever_smoked = np.isin(
        smoking, [smoking_levels.index("former"), smoking_levels.index("current")]
    )
    history = np.where(
        age_at_start >= 50, pp["prior_cancer_50_plus"], pp["prior_cancer_under_50"]
    ) > rng.random(n)
    history = np.where(has_cancer, cancer_kind == BONE_METASTASIS, history)

    n_visits = 1 + rng.poisson(vp["extra_visits_mean"], n)
    n_visits += np.where(has_cancer, rng.poisson(vp["cancer_extra_visits_mean"], n), 0)

    # Presentations: ordinal within patient, onset of cancer, dates.
    rows = int(n_visits.sum())
    patient = np.repeat(np.arange(n), n_visits)
    first = np.cumsum(n_visits) - n_visits
    last = first + n_visits - 1
    ordinal = np.arange(rows) - first[patient]
    onset_ordinal = np.floor(rng.random(n) * n_visits).astype(np.int64)
    cancer_row = has_cancer[patient]
    active = cancer_row & (ordinal >= onset_ordinal[patient])
    onset = cancer_row & (ordinal == onset_ordinal[patient])

    short = uniform(rng, rows) < np.where(
        active, vp["cancer_short_gap_share"], vp["short_gap_share"]
    )
    gap = np.where(
        short,
        rng.geometric(1.0 / vp["short_gap_mean_days"], rows),
        vp["long_gap_min_days"] + rng.exponential(vp["long_gap_mean_days"], rows),
    ).astype(np.int64)
    gap[first] = 0
    cumulative = np.cumsum(gap)
    offset = cumulative - cumulative[first][patient]
    span = offset[last]
    period = end_day - start_day
    # A patient whose visits would not fit in the period has them pressed together.
    scale = np.where(span > period, period / np.maximum(span, 1), 1.0)
    offset = np.floor(offset * scale[patient]).astype(np.int64)
    span = offset[last]
    first_day = start_day + np.floor(rng.random(n) * (period - span + 1)).astype(np.int64)
    day = first_day[patient] + offset
    age = np.minimum((day - birth_day[patient]) * 4 // 1461, 90)  # whole years, 90 = 90+

    # Back pain, site, symptoms.
    p_back = np.where(back_pain_patient[patient], pp["back_pain_visit"], 0.0)
    p_back = np.where(active, cp["back_pain_visit"], p_back)
    back_pain = (uniform(rng, rows) < p_back) | onset
    site = np.where(
        active,
        choose(rng, profile["pain_site"]["cancer"], rows),
        choose(rng, profile["pain_site"]["all"], rows),
    )
    kind_row = cancer_kind[patient]
    symptoms: dict[str, np.ndarray] = {}
    for name in symptom_names():
        rates = profile["symptoms"][name]
        p = np.where(back_pain, rates["back_pain"], rates["other"])
        p = np.where(active, rates["cancer"], p)
        p = np.where(active & (kind_row == BONE_METASTASIS), rates["bone_metastasis"], p)
        symptoms[name] = uniform(rng, rows) < p
    # A cancer's onset visit shows at least one red flag.
    onset_flags = profile["onset_flags"]
    flagged = np.logical_or.reduce([symptoms[f] for f in onset_flags])
    forced = rng.integers(0, len(onset_flags), rows)
    for i, name in enumerate(onset_flags):
        symptoms[name] |= onset & ~flagged & (forced == i)

    # Episodes: a long gap starts a new one; duration counts from the episode's start.
    episode_start = (ordinal == 0) | ~short
    start_row = np.maximum.accumulate(np.where(episode_start, np.arange(rows), 0))
    chronic = uniform(rng, rows) < vp["chronic_share"]
    initial_duration = np.where(
        chronic,
        vp["chronic_duration_min_days"] + rng.exponential(vp["chronic_duration_mean_days"], rows),
        rng.geometric(1.0 / vp["acute_duration_mean_days"], rows) - 1,
    ).astype(np.int64)
    pain_duration = initial_duration[start_row] + (day - day[start_row])

    base = rng.integers(vp["pain_base_low"], vp["pain_base_high"] + 1, n)
    drift = np.where(active, vp["cancer_pain_drift"] * (ordinal - onset_ordinal[patient] + 1), 0)
    noise = rng.normal(0.0, vp["pain_noise_sd"], rows)
    pain_score = np.clip(np.rint(base[patient] + noise + drift), 0, 10).astype(np.int64)

    # Diagnosis after the onset visit; one falling after the period is not recorded.
    onset_day = np.zeros(n, dtype=np.int64)
    onset_day[patient[onset]] = day[onset]
    delay = cp["diagnosis_delay_min_days"] + rng.exponential(cp["diagnosis_delay_mean_days"], n)
    diagnosed = onset_day + delay.astype(np.int64)
    recorded = has_cancer & (diagnosed <= end_day)
    diagnosis_day = np.where(recorded, diagnosed, NO_DATE)
    extra = 1 + rng.exponential(cp["metastasis_extra_delay_mean_days"], n).astype(np.int64)
    metastasis = (cancer_kind == LUNG_WITH_METASTASIS) & recorded & (diagnosed + extra <= end_day)
    metastasis_day = np.where(metastasis, diagnosed + extra, NO_DATE)
    # After a recorded diagnosis the patient has a history of cancer.
    prior_cancer = history[patient] | (day > diagnosis_day[patient])

    return Population(
        sex=sex,
        smoking=smoking,
        ever_smoked=ever_smoked,
        cancer_kind=cancer_kind,
        diagnosis_day=diagnosis_day,
        metastasis_day=metastasis_day,
        patient=patient,
        day=day,
        age=age,
        back_pain=back_pain,
        site=site,
        pain_score=pain_score,
        pain_duration=pain_duration,
        prior_cancer=prior_cancer,
        active_cancer=active,
        onset=onset,
        symptoms=symptoms,
    )
