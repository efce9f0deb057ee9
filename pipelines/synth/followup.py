"""Deaths, observation periods, imaging of other regions and complicating diagnoses,
for one chunk.

Drawn after the chunk's intake, orders and cancer diagnoses, from the same random
stream, so that a seed gives the same presentations and orders as before these were
added. Deaths end follow-up (more often, and sooner, for patients with cancer);
observation periods end before the end of the period for some patients; imaging of a
limb, the head or the abdomen (body_region `other`) is ordered now and then and is no
outcome of the cohort; complicating conditions (the hedis_lbp exclusions) are coded in
the diagnoses of some patients.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.synth.intake import Numbering, labels
from pipelines.synth.orders import code_system_of
from pipelines.synth.population import NONE, Population, uniform


def _visit_range(pop: Population) -> tuple[np.ndarray, np.ndarray]:
    """The first and last visit day of each patient (a patient's rows are contiguous)."""
    starts = np.flatnonzero(np.r_[True, pop.patient[1:] != pop.patient[:-1]])
    return np.minimum.reduceat(pop.day, starts), np.maximum.reduceat(pop.day, starts)


def generate_patients(
    rng: np.random.Generator,
    pop: Population,
    profile: dict[str, Any],
    numbering: Numbering,
    start_day: int,
    end_day: int,
) -> dict[str, pa.Array]:
    """One row per patient: a death after the last visit (for some), the observation
    period from before the first visit (not before the period) to the end of the period,
    the death, or earlier."""
    fp = profile["followup"]
    n = pop.n_patients
    first, last = _visit_range(pop)
    cancer = pop.cancer_kind != NONE
    p_death = np.where(cancer, fp["death_cancer"], fp["death_other"])
    mean_days = np.where(cancer, fp["death_cancer_mean_days"], fp["death_other_mean_days"])
    death_day = last + 1 + rng.exponential(mean_days).astype(np.int64)
    died = (uniform(rng, n) < p_death) & (death_day <= end_day)
    observed_from = np.maximum(
        first - rng.integers(0, fp["observation_lead_max_days"] + 1, n), start_day
    )
    leaves = uniform(rng, n) < fp["observation_ends"]
    leave_day = last + rng.integers(0, fp["observation_tail_max_days"] + 1, n)
    ends = leaves & (leave_day < end_day)
    end = np.where(died, death_day, leave_day)
    return {
        "patient_id": numbering.patient_ids(np.arange(n)),
        "death_date": pa.array(death_day.astype("datetime64[D]"), mask=~died),
        "observation_start_date": pa.array(observed_from.astype("datetime64[D]")),
        "observation_end_date": pa.array(end.astype("datetime64[D]"), mask=~(died | ends)),
    }


def generate_other_imaging(
    rng: np.random.Generator,
    pop: Population,
    profile: dict[str, Any],
    numbering: Numbering,
    end_day: int,
) -> dict[str, pa.Array]:
    """Imaging of a known other region after some presentations (any complaint)."""
    fp = profile["followup"]
    rows = pop.n_rows
    day = pop.day + rng.integers(0, fp["other_imaging_max_delay_days"] + 1, rows)
    keep = (uniform(rng, rows) < fp["other_imaging"]) & (day <= end_day)
    modalities = list(fp["other_imaging_modalities"])
    modality = rng.integers(0, len(modalities), rows)[keep]
    patient, day = pop.patient[keep], day[keep]
    n = len(patient)
    return {
        "referral_id": numbering.referral_ids(n),
        "patient_id": numbering.patient_ids(patient),
        "referral_date": pa.array(day.astype("datetime64[D]")),
        "referral_type": labels(["imaging"], np.zeros(n, np.int64)),
        "modality": labels(modalities, modality),
        "body_region": labels(["other"], np.zeros(n, np.int64)),
        "code": pa.nulls(n, pa.string()),
        "code_system": pa.nulls(n, pa.string()),
        "urgency": pa.nulls(n, pa.string()),
    }


def generate_complicating_diagnoses(
    rng: np.random.Generator,
    pop: Population,
    profile: dict[str, Any],
    numbering: Numbering,
    start_day: int,
) -> dict[str, pa.Array]:
    """A complicating condition (the profile's codes of the hedis_lbp exclusion value sets)
    coded for some patients, dated from a year before their first visit (not before the
    period) to their last."""
    fp = profile["followup"]
    n = pop.n_patients
    first, last = _visit_range(pop)
    sets = list(fp["complicating_conditions"])
    codes = [(s, code) for s in sets for code in profile["codes"][s]]
    has = uniform(rng, n) < fp["complicating_share"]
    patient = np.flatnonzero(has)
    pick = rng.integers(0, len(codes), n)[has]
    span = (last - first + 366)[has]
    day = first[has] - 365 + np.floor(rng.random(len(patient)) * span).astype(np.int64)
    day = np.maximum(day, start_day)
    return {
        "patient_id": numbering.patient_ids(patient),
        "diagnosis_date": pa.array(day.astype("datetime64[D]")),
        "code": labels([c for _, c in codes], pick),
        "code_system": labels([code_system_of(s) for s, _ in codes], pick),
    }
