"""The baseline: the red-flag rules written row by row in plain Python.

This is the "straightforward" implementation the engines are measured against,
and a second method for the tests: it follows the clinical rules (version 2)
directly (tiers and weights written out by hand, each mention's cues looked for
token by token, the history by scanning the patient's earlier rows), and only
takes the phrase lists, the cue lexicon's patterns and the value sets from schemas/. It lives in
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
from pipelines.scoring.context import CueClass, load_lexicon
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
COMPLICATING = [
    "trauma",
    "osteoporosis",
    "steroid_use",
    "iv_drug_use",
    "immunosuppression",
    "spinal_infection",
    "spondylopathy",
    "lumbar_surgery",
    "palliative",
]
WEIGHTS = {
    "known_cancer": 4,
    "hemoptysis": 3,
    "bladder_bowel_dysfunction": 3,
    "limb_weakness": 3,
    "unexplained_weight_loss": 2,
    "suspected_cancer": 2,
    "night_pain": 1,
    "rest_pain": 1,
    "progressive": 1,
    "thoracic_pain": 1,
    "strain_pain": 1,
    "spinal_tenderness": 1,
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
PHRASES = {k: [str(p) for p in v] for k, v in _RAW["phrases"].items()}
LEXICON = load_lexicon()
TOKEN = re.compile(r"^([MPC])([0-9]+)$")


def _marked(text: str | None, name: str) -> list[str]:
    """The text's tokens with the mentions of phrase list `name`, the pseudo-negations
    and the cues marked, by the lexicon's own patterns (Python's re, one text)."""
    text = LEXICON.normalise(text or "")
    for pattern, token in LEXICON.mention_passes(PHRASES[name]):
        text = re.sub(pattern, token, text)
    if "M" not in text:
        return []
    for pattern, token in LEXICON.mark_passes:
        text = re.sub(pattern, token, text)
    return text.split(" ")


def reading(text: str | None, name: str) -> set[str]:
    """The statuses of the mentions of `name` in the text, read mention by mention:
    a cue before it reaches it within its scope in words, in the same sentence, with no
    termination between; a cue after it reaches back to it alone, and not across a
    comma."""
    tokens = _marked(text, name)
    words, starts, kinds = [], [], []
    for t in tokens:
        m = TOKEN.match(t)
        if m is None:
            words.append(1 if re.fullmatch("[a-z0-9]+", t) else 0)
            kinds.append(None)
        elif m.group(1) == "C":
            words.append(LEXICON.classes[int(m.group(2))].words)
            kinds.append(LEXICON.classes[int(m.group(2))])
        else:
            words.append(int(m.group(2)))
            kinds.append(m.group(1))
        starts.append(sum(words[:-1]))
    found: set[str] = set()
    for i, kind in enumerate(kinds):
        if kind != "M":
            continue
        cue_before = {k: False for k in ("pre_negation", "hypothetical_before", "other_person")}
        ended_all = ended_pre = False
        for j in range(i - 1, -1, -1):
            if tokens[j] == ".":
                break
            c = kinds[j]
            if not isinstance(c, CueClass):
                continue
            for k in cue_before:
                ended = ended_pre or ended_all if k == "pre_negation" else ended_all
                if c.scope(k) and not ended and starts[i] < starts[j] + words[j] + c.scope(k):
                    cue_before[k] = True
            ended_all = ended_all or c.ends_all
            ended_pre = ended_pre or c.ends_pre_negation
        cue_after = {k: False for k in ("post_negation", "hypothetical_after")}
        for j in range(i + 1, len(tokens)):
            c = kinds[j]
            if tokens[j] in (".", ",") or c == "M":
                break
            if not isinstance(c, CueClass):
                continue
            if c.ends_all:
                break
            for k in cue_after:
                if c.scope(k) and starts[i] + words[i] > starts[j] - c.scope(k):
                    cue_after[k] = True
        other = cue_before["other_person"]
        negated = cue_before["pre_negation"] or cue_after["post_negation"]
        hypothetical = cue_before["hypothetical_before"] or cue_after["hypothetical_after"]
        if other:
            found.add("other_person")
        elif negated:
            found.add("negated")
        elif hypothetical:
            found.add("hypothetical")
        else:
            found.add("affirmed")
    return found


def text_value(text: str | None, name: str) -> bool | None:
    """TRUE when a mention is affirmed, FALSE when none is and one is negated, else None."""
    found = reading(text, name)
    return True if "affirmed" in found else (False if "negated" in found else None)


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
    text = row["chief_complaint"]
    out["back_pain"] = (
        bool(row["back_pain"])
        if _known(row["back_pain"])
        else has_code(row["dx_codes"], "back_pain") or text_value(text, "back_pain") is True
    )
    if _known(row["pain_site"]):
        out["pain_site"] = row["pain_site"]
    elif has_code(row["dx_codes"], "site_thoracic") or text_value(text, "site_thoracic") is True:
        out["pain_site"] = "thoracic"
    elif has_code(row["dx_codes"], "site_lumbar") or text_value(text, "site_lumbar") is True:
        out["pain_site"] = "lumbar"
    else:
        out["pain_site"] = "unspecified"
    for name in SYMPTOMS:
        if _known(row[name]):
            out[name] = bool(row[name])
            continue
        said = text_value(text, name)
        code = name not in NO_CODES and has_code(row["dx_codes"], name)
        out[name] = True if (code or said is True) else said
    return out


def _cancer_here(row: dict, e: dict) -> bool:
    return e["prior_cancer"] is True or has_code(row["dx_codes"], "prior_cancer")


def _smoked_here(row: dict) -> bool:
    return row["smoking_status"] in ("current", "former") or has_code(
        row["dx_codes"], "ever_smoked"
    )


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
        text = r["chief_complaint"]
        cancer_before = any(_cancer_here(rows[j], eff[j]) for j in [*earlier, i])
        smoked_before = any(_smoked_here(rows[j]) for j in [*earlier, i])
        f = {
            **e,
            "pain_persistent": pain_persistent,
            "progressive": progressive,
            "repeat_presentation": n_recent >= 3,
            "age_40_plus": _gte(age, 40),
            "age_50_plus": _gte(age, 50),
            "age_70_plus": _gte(age, 70),
            "thoracic_pain": e["pain_site"] == "thoracic",
            "strain_pain": text_value(text, "strain_pain"),
            "spinal_tenderness": text_value(text, "spinal_tenderness"),
            "known_cancer": True if cancer_before else e["prior_cancer"],
            "suspected_cancer": "hypothetical" in reading(text, "prior_cancer"),
            "ever_smoked": True
            if smoked_before
            else (False if r["smoking_status"] == "never" else None),
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
            "complicated": any(has_code(r["dx_codes"], vs) for vs in COMPLICATING),
        }
        f["lung_symptom_count"] = sum(1 for n in LUNG if f[n] is True)
        f["metastasis_pain"] = _or(
            *(
                f[n]
                for n in (
                    "thoracic_pain",
                    "progressive",
                    "rest_pain",
                    "night_pain",
                    "strain_pain",
                    "spinal_tenderness",
                )
            )
        )
        t = {k: v is True for k, v in f.items()}  # NULL counts as not present
        n_lung = f["lung_symptom_count"]
        if not f["back_pain"]:
            tier = "not_back_pain"
        elif (
            t["bladder_bowel_dysfunction"]
            or t["limb_weakness"]
            or (t["known_cancer"] and t["neuro_symptom"])
        ):
            tier = "emergency"
        elif t["known_cancer"] and t["metastasis_pain"]:
            tier = "urgent"
        elif (
            t["known_cancer"]
            or t["suspected_cancer"]
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
                "strain_pain",
                "spinal_tenderness",
                "unexplained_weight_loss",
                "hemoptysis",
                "neuro_symptom",
                "fever",
                "repeat_presentation",
                "complicated",
                "age_70_plus",
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
