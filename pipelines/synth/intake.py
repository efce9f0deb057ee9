"""How presentations get documented: the intake table of one chunk.

A presentation is documented in one of four modes (profile `documentation.mode`):
- structured: the boolean fields are filled, each NULL at its own rate; a short
  complaint text and ICD-10-CM codes are often added;
- text_only: every boolean is NULL; the complaint text names what is present and
  denies some of what is absent ("denies weight loss, night pain");
- codes_only: every boolean and the text are NULL; `dx_codes` carries the codes;
- sparse: only `back_pain` (and sometimes a bare complaint), so the scorer sees a
  poorly documented presentation.
Text and codes always agree with the truth: a present symptom is never denied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.synth.population import Population, choose, uniform
from pipelines.synth.profile import symptom_names

STRUCTURED, TEXT_ONLY, CODES_ONLY, SPARSE = 0, 1, 2, 3
# Looks up, for each row, the rate of its documentation mode.
PerMode = Callable[[dict[str, float]], np.ndarray]
MODES = ("structured", "text_only", "codes_only", "sparse")


def ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """`prefix` + zero-padded number, e.g. E00000001.

    Every id has the same length, so the string array is built directly as one
    fixed-width byte buffer: no per-row string work for millions of ids.
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    if len(numbers) and numbers.max() >= 10**width:
        raise ValueError(f"id number {numbers.max()} does not fit in {width} digits")
    n, size = len(numbers), len(prefix) + width
    chars = np.empty((n, size), dtype=np.uint8)
    chars[:, : len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    chars[:, len(prefix) :] = (numbers[:, None] // powers) % 10 + ord("0")
    offsets = np.arange(0, (n + 1) * size, size, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])


@dataclass(frozen=True)
class Numbering:
    """Where one chunk's ids start and how wide they are: E00000001, P0000001, R00000001."""

    first_patient: int
    first_encounter: int
    first_referral: int
    patient_width: int
    row_width: int

    def patient_ids(self, patient: np.ndarray) -> pa.Array:
        return ids("P", self.first_patient + patient, self.patient_width)

    def encounter_ids(self, n: int) -> pa.Array:
        return ids("E", self.first_encounter + np.arange(n), self.row_width)

    def referral_ids(self, n: int) -> pa.Array:
        return ids("R", self.first_referral + np.arange(n), self.row_width)


def labels(values: list[str], index: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    """The label of each index; NULL where `present` is False."""
    mask = None if present is None else ~present
    return pc.take(pa.array(values, pa.string()), pa.array(index, mask=mask))


def phrases(
    rng: np.random.Generator,
    groups: list[list[str]],
    present: np.ndarray,
    group: np.ndarray | None = None,
) -> pa.Array:
    """A random phrase from `groups[group]` (or the only group) per row; NULL where not present.

    Only the present rows draw a phrase: most clauses are absent from most rows.
    """
    flat = [p for g in groups for p in g]
    sizes = np.array([len(g) for g in groups])
    offsets = np.cumsum(sizes) - sizes
    rows = np.flatnonzero(present)
    chosen = np.zeros(len(rows), dtype=np.int64) if group is None else group[rows]
    index = np.zeros(len(present), dtype=np.int32)
    index[rows] = offsets[chosen] + rng.integers(0, sizes[chosen])
    return labels(flat, index, present)


def join_clauses(clauses: list[pa.Array], separator: str) -> pa.Array:
    """Join each row's non-NULL clauses; NULL when a row has none.

    A trailing empty clause keeps every row non-NULL, because pyarrow's
    binary_join_element_wise with null_handling="skip" drops rows that are all
    NULL; the separator it leaves behind is trimmed off.
    """
    joined = pc.binary_join_element_wise(*clauses, pa.scalar(""), separator, null_handling="skip")
    trimmed = pc.utf8_rtrim(joined, characters=separator)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def document_intake(
    rng: np.random.Generator,
    pop: Population,
    profile: dict[str, Any],
    numbering: Numbering,
) -> dict[str, pa.Array]:
    """The intake columns of one chunk, by name (the caller orders them by contract)."""
    dp = profile["documentation"]
    rows = pop.n_rows
    mode = choose(rng, {m: dp["mode"][m] for m in MODES}, rows)
    structured = mode == STRUCTURED
    sparse = mode == SPARSE
    back_pain = pop.back_pain

    def recorded(field: str) -> np.ndarray:
        return structured & (uniform(rng, rows) >= dp["structured_null"][field])

    def per_mode(rates: dict[str, float]) -> np.ndarray:
        return np.array([rates.get(m, 0.0) for m in MODES])[mode]

    columns: dict[str, pa.Array] = {}
    columns["encounter_id"] = numbering.encounter_ids(rows)
    columns["patient_id"] = numbering.patient_ids(pop.patient)
    columns["encounter_date"] = pa.array(pop.day.astype("datetime64[D]"))
    columns["age_years"] = pa.array(pop.age, pa.int32())
    pp = profile["patients"]
    columns["sex"] = labels(list(pp["sex"]), pop.sex[pop.patient])
    smoking_recorded = uniform(rng, rows) >= pp["smoking_null"]
    columns["smoking_status"] = labels(
        list(pp["smoking"]), pop.smoking[pop.patient], smoking_recorded
    )
    columns["prior_cancer"] = pa.array(pop.prior_cancer, mask=~recorded("prior_cancer"))
    back_pain_recorded = recorded("back_pain") | sparse
    columns["back_pain"] = pa.array(back_pain, mask=~back_pain_recorded)
    sites = list(profile["pain_site"]["all"])
    columns["pain_site"] = labels(sites, pop.site, back_pain & recorded("pain_site"))
    columns["pain_duration_days"] = pa.array(
        pop.pain_duration, pa.int32(), mask=~(back_pain & recorded("pain_duration_days"))
    )
    score_recorded = (structured | (mode == TEXT_ONLY)) & np.where(
        back_pain,
        uniform(rng, rows) >= dp["structured_null"]["pain_score"],
        uniform(rng, rows) < dp["other_pain_score"],
    )
    columns["pain_score"] = pa.array(pop.pain_score, pa.int32(), mask=~score_recorded)
    for name in symptom_names():
        columns[name] = pa.array(pop.symptoms[name], mask=~recorded(name))

    columns["chief_complaint"] = _complaint(
        rng, pop, profile, mode, structured & back_pain & ~back_pain_recorded, per_mode
    )
    columns["dx_codes"] = _codes(rng, pop, profile, mode, per_mode)
    return columns


def _complaint(
    rng: np.random.Generator,
    pop: Population,
    profile: dict[str, Any],
    mode: np.ndarray,
    needs_text: np.ndarray,
    per_mode: PerMode,
) -> pa.Array:
    """Free text: the main complaint, then mentions and denials, comma-separated clauses."""
    dp, tp = profile["documentation"], profile["text"]
    rows = pop.n_rows
    structured, sparse = mode == STRUCTURED, mode == SPARSE
    has_text = (
        (structured & (uniform(rng, rows) < dp["structured_text"]))
        | (mode == TEXT_ONLY)
        | (sparse & (uniform(rng, rows) < dp["sparse_text"]))
        | needs_text
    )
    sites = list(profile["pain_site"]["all"])
    site_group = np.select(
        [pop.site == sites.index("lumbar"), pop.site == sites.index("thoracic")], [0, 1], 2
    )
    group = np.where(pop.back_pain, site_group, 3)
    # Some texts start with a capital letter: a capitalised variant of each main phrase.
    bp = tp["back_pain"]
    main_groups = [bp["lumbar"], bp["thoracic"], bp["other"], tp["other_complaints"]]
    main_groups += [[p.capitalize() for p in g] for g in main_groups]
    group = group + np.where(uniform(rng, rows) < dp["capitalised"], 4, 0)
    deny_back = has_text & ~pop.back_pain & (uniform(rng, rows) < dp["deny_back_pain"])
    clauses = [
        phrases(rng, main_groups, has_text, group),
        phrases(rng, [tp["deny_back_pain"]], deny_back),
    ]
    mention_rate, deny_rate = per_mode(dp["mention_present"]), per_mode(dp["deny_absent"])
    detailed = has_text & ~sparse
    for name, said in tp["symptoms"].items():
        truth = pop.prior_cancer if name == "prior_cancer" else pop.symptoms[name]
        draw = uniform(rng, rows)
        mention = detailed & truth & (draw < mention_rate)
        deny = detailed & ~truth & (draw < deny_rate)
        clauses.append(
            phrases(rng, [said["present"], said["deny"]], mention | deny, deny.astype(np.int64))
        )
    return join_clauses(clauses, ", ")


def _codes(
    rng: np.random.Generator,
    pop: Population,
    profile: dict[str, Any],
    mode: np.ndarray,
    per_mode: PerMode,
) -> pa.Array:
    """ICD-10-CM codes separated by ';': the back-pain code first, then symptoms."""
    dp, codes = profile["documentation"], profile["codes"]
    rows = pop.n_rows
    has_codes = ((mode == STRUCTURED) & (uniform(rng, rows) < dp["structured_codes"])) | (
        mode == CODES_ONLY
    )
    sites = list(profile["pain_site"]["all"])
    site_group = np.select(
        [pop.site == sites.index("lumbar"), pop.site == sites.index("thoracic")], [0, 1], 2
    )
    back = [codes["site_lumbar"], codes["site_thoracic"], codes["back_pain"]]
    clauses = [phrases(rng, back, has_codes & pop.back_pain, site_group)]
    prior = has_codes & pop.prior_cancer & (uniform(rng, rows) < dp["prior_cancer_code"])
    clauses.append(phrases(rng, [codes["prior_cancer"]], prior))
    code_rate = per_mode(dp["code_present"])
    for name in symptom_names():
        if name not in codes:
            continue
        coded = has_codes & pop.symptoms[name] & (uniform(rng, rows) < code_rate)
        clauses.append(phrases(rng, [codes[name]], coded))
    smoked = (
        has_codes & pop.ever_smoked[pop.patient] & (uniform(rng, rows) < dp["ever_smoked_code"])
    )
    clauses.append(phrases(rng, [codes["ever_smoked"]], smoked))
    return join_clauses(clauses, ";")
