"""The baseline: the red-flag rules written row by row in plain Python.

This is the "straightforward" implementation the engines are measured against,
and a second method for the tests: it follows the clinical rules directly (tiers and
weights written out by hand, text read clause by clause and word by word), and
only takes the phrase lists, cues and value sets from schemas/. It lives in
benchmarks/ only; the pipeline never uses it.

`python -m benchmarks.baseline_scoring INPUT.parquet` scores a file and prints
the row count (what the benchmark times).
"""

from __future__ import annotations

import re
import sys
from datetime import date

import pandas as pd

from pipelines.resources import active
from pipelines.value_sets import matches

SYMPTOMS = [
    "prior_cancer",
    "night_pain",
    "rest_pain",
    "progressive_pain",
    "unexplained_weight_loss",
    "fatigue",
    "appetite_loss",
    "fever",
    "persistent_cough",
    "dyspnea",
    "chest_pain",
    "hemoptysis",
    "limb_numbness",
    "limb_tingling",
    "limb_weakness",
    "bladder_bowel_dysfunction",
]
NO_CODES = {"night_pain", "rest_pain", "progressive_pain"}
LUNG = [
    "persistent_cough",
    "fatigue",
    "dyspnea",
    "chest_pain",
    "unexplained_weight_loss",
    "appetite_loss",
]
WEIGHTS = {
    "prior_cancer": 4,
    "hemoptysis": 3,
    "bladder_bowel_dysfunction": 3,
    "limb_weakness": 3,
    "unexplained_weight_loss": 2,
    "night_pain": 1,
    "rest_pain": 1,
    "progressive": 1,
    "thoracic_pain": 1,
    "pain_persistent": 1,
    "age_50_plus": 1,
    "ever_smoked": 1,
    "persistent_cough": 1,
    "dyspnea": 1,
    "chest_pain": 1,
    "fatigue": 1,
    "appetite_loss": 1,
    "fever": 1,
    "limb_numbness": 1,
    "limb_tingling": 1,
    "repeat_presentation": 1,
}

_RAW = active().yaml("schemas/red_flags.yml")
PHRASES = {k: [p.lower().split() for p in v] for k, v in _RAW["phrases"].items()}
CUES = [c.split() for c in _RAW["text"]["negation_cues"]]
SCOPE = 5


def clauses(text: str | None) -> list[list[str]]:
    """Words of each clause: clauses end at . ; , but however; words are [a-z0-9']+."""
    if not text:
        return []
    text = re.sub(r"[^a-z0-9'.;,]+", " ", text.lower())
    out: list[list[str]] = []
    current: list[str] = []
    for token in re.findall(r"[a-z0-9']+|[.;,]", text):
        if token in (".", ";", ",", "but", "however"):
            out.append(current)
            current = []
        else:
            current.append(token)
    out.append(current)
    return out


def mentions(text: str | None, name: str) -> tuple[bool, bool]:
    """(mentioned at all, mentioned at least once without a cue in the 5 words before).

    Mentions are read left to right, the longest phrase at each word first; a
    phrase inside a longer mention ("back pain" in "low back pain") is not a
    mention of its own.
    """
    seen = affirmed = False
    longest_first = sorted(PHRASES[name], key=len, reverse=True)
    for words in clauses(text):
        i = 0
        while i < len(words):
            phrase = next((p for p in longest_first if words[i : i + len(p)] == p), None)
            if phrase is None:
                i += 1
                continue
            seen = True
            window = words[max(0, i - SCOPE) : i]
            negated = any(
                window[j : j + len(cue)] == cue for cue in CUES for j in range(len(window))
            )
            affirmed = affirmed or not negated
            i += len(phrase)
    return seen, affirmed


def has_code(dx_codes: str | None, value_set: str) -> bool:
    return bool(dx_codes) and any(c.strip() and matches(c, value_set) for c in dx_codes.split(";"))


def _known(value: object) -> bool:
    return (
        value is not None
        and not (isinstance(value, float) and value != value)
        and (value is not pd.NA and value is not pd.NaT)
    )


def _and(*values: bool | None) -> bool | None:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _or(*values: bool | None) -> bool | None:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def _gte(value: object, n: int) -> bool | None:
    return value >= n if _known(value) else None


def effective(row: dict) -> dict:
    out: dict = {}
    seen, affirmed = mentions(row["chief_complaint"], "back_pain")
    out["back_pain"] = (
        bool(row["back_pain"])
        if _known(row["back_pain"])
        else has_code(row["dx_codes"], "back_pain") or affirmed
    )
    if _known(row["pain_site"]):
        out["pain_site"] = row["pain_site"]
    elif (
        has_code(row["dx_codes"], "site_thoracic")
        or mentions(row["chief_complaint"], "site_thoracic")[1]
    ):
        out["pain_site"] = "thoracic"
    elif (
        has_code(row["dx_codes"], "site_lumbar")
        or mentions(row["chief_complaint"], "site_lumbar")[1]
    ):
        out["pain_site"] = "lumbar"
    else:
        out["pain_site"] = "unspecified"
    for name in SYMPTOMS:
        if _known(row[name]):
            out[name] = bool(row[name])
            continue
        seen, affirmed = mentions(row["chief_complaint"], name)
        code = name not in NO_CODES and has_code(row["dx_codes"], name)
        out[name] = True if (code or affirmed) else (False if seen else None)
    return out


def score_rows(rows: list[dict]) -> list[dict]:
    """Score plain dict rows (intake columns; dates as datetime.date) one at a time."""
    eff = [effective(r) for r in rows]
    by_patient: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_patient.setdefault(r["patient_id"], []).append(i)
    results = []
    for i, r in enumerate(rows):
        e = eff[i]
        key = (r["encounter_date"], r["encounter_id"])
        earlier = sorted(
            (
                j
                for j in by_patient[r["patient_id"]]
                if (rows[j]["encounter_date"], rows[j]["encounter_id"]) < key
            ),
            key=lambda j: (rows[j]["encounter_date"], rows[j]["encounter_id"]),
        )
        bp_earlier = [j for j in earlier if eff[j]["back_pain"]]
        today: date = r["encounter_date"]
        # Episode index: walk the patient's back-pain presentations in order.
        episode_start = None
        if e["back_pain"]:
            previous_date = None
            for j in [*bp_earlier, i]:
                d = rows[j]["encounter_date"]
                if previous_date is None or (d - previous_date).days > 180:
                    episode_start = d
                previous_date = d
        persistent_episode = e["back_pain"] and (today - episode_start).days >= 28
        pain_persistent = _or(_gte(r["pain_duration_days"], 28), persistent_episode)
        rise: bool | None = False
        if bp_earlier and (today - rows[bp_earlier[-1]]["encounter_date"]).days <= 90:
            before = rows[bp_earlier[-1]]["pain_score"]
            now = r["pain_score"]
            rise = now - before >= 2 if _known(now) and _known(before) else None
        progressive = _or(e["progressive_pain"], rise)
        n_recent = sum(1 for j in bp_earlier if (today - rows[j]["encounter_date"]).days <= 90) + (
            1 if e["back_pain"] else 0
        )
        age = r["age_years"]
        smoking = {"former": True, "current": True, "never": False}.get(r["smoking_status"])
        f = {
            **e,
            "pain_persistent": pain_persistent,
            "progressive": progressive,
            "repeat_presentation": n_recent >= 3,
            "age_40_plus": _gte(age, 40),
            "age_50_plus": _gte(age, 50),
            "thoracic_pain": e["pain_site"] == "thoracic",
            "ever_smoked": _or(smoking, has_code(r["dx_codes"], "ever_smoked")),
            "neuro_symptom": _or(
                *(
                    e[n]
                    for n in (
                        "limb_numbness",
                        "limb_tingling",
                        "limb_weakness",
                        "bladder_bowel_dysfunction",
                    )
                )
            ),
        }
        f["lung_symptom_count"] = sum(1 for n in LUNG if f[n] is True)
        t = {k: v is True for k, v in f.items()}  # NULL counts as not present
        n_lung = f["lung_symptom_count"]
        if not f["back_pain"]:
            tier = "not_back_pain"
        elif (
            t["bladder_bowel_dysfunction"]
            or t["limb_weakness"]
            or (t["neuro_symptom"] and t["prior_cancer"])
        ):
            tier = "urgent"
        elif (
            t["prior_cancer"]
            or (t["hemoptysis"] and t["age_40_plus"])
            or (t["age_40_plus"] and (n_lung >= 2 or (t["ever_smoked"] and n_lung >= 1)))
            or (t["age_50_plus"] and t["unexplained_weight_loss"])
        ):
            tier = "high"
        elif any(
            t[n]
            for n in (
                "night_pain",
                "rest_pain",
                "progressive",
                "thoracic_pain",
                "unexplained_weight_loss",
                "hemoptysis",
                "neuro_symptom",
                "fever",
                "repeat_presentation",
            )
        ) or (t["pain_persistent"] and t["age_50_plus"]):
            tier = "moderate"
        else:
            tier = "low"
        f["tier"] = tier
        f["score"] = sum(w for n, w in WEIGHTS.items() if t[n])
        f["completeness"] = sum(1 for n in ["back_pain", *SYMPTOMS] if f[n] is not None) / 17
        f["encounter_id"] = r["encounter_id"]
        results.append(f)
    return results


def frame_to_rows(frame: pd.DataFrame) -> list[dict]:
    """Plain Python values per row; NULL becomes None."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for r in rows:
        r["encounter_date"] = pd.Timestamp(r["encounter_date"]).date()
    return rows


def main(argv: list[str]) -> int:
    from pipelines.contracts import load_contract

    frame = pd.read_parquet(argv[0])
    for c in load_contract("intake").names:
        if c not in frame.columns:
            frame[c] = None
    print(len(score_rows(frame_to_rows(frame))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
