"""Shared by the scoring tests: build intake frames from the readable fixture."""

from __future__ import annotations

import pandas as pd
import yaml

from pipelines.contracts import load_contract
from pipelines.scoring.rules import load_rules
from tests.support import FIXTURES

FIXTURE = FIXTURES / "scoring_cases.yml"


def load_cases() -> tuple[dict, list[dict]]:
    raw = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))
    return raw["defaults"], raw["cases"]


def intake_frame(rows: list[dict], defaults: dict | None = None) -> pd.DataFrame:
    """A typed intake frame: every contract column, NULL where a row gives nothing."""
    contract = load_contract("intake")
    filled = [{**(defaults or {}), **row} for row in rows]
    frame = pd.DataFrame({c: [r.get(c) for r in filled] for c in contract.names})
    frame["encounter_date"] = pd.to_datetime(frame["encounter_date"])
    return frame.astype(contract.pandas_dtypes())


# What the parity and baseline tests build random intake tables from.
BOOLEANS = [f.name for f in load_rules().effective if f.name != "pain_site"]

# Text fragments: phrases of several features, cues, clause marks and words,
# filler, odd characters; joined at random they make negated and plain mentions.
FRAGMENTS = [
    "back pain",
    "low back pain",
    "upper back",
    "lumbar",
    "thoracic",
    "backache",
    "cough",
    "coughing up blood",
    "fever",
    "night pain",
    "worse at night",
    "not relieved by rest",
    "weight loss",
    "fatigue",
    "numb",
    "numbness",
    "tingling",
    "weak legs",
    "incontinence",
    "loss of appetite",
    "shortness of breath",
    "chest pain",
    "history of cancer",
    "worsening",
    "no",
    "not",
    "denies",
    "denied",
    "without",
    "negative for",
    "but",
    "however",
    "and",
    "with",
    "mild",
    "the",
    "of",
    "recent",
    "since",
    "nothing",
    "notable",
    ",",
    ".",
    ";",
    " ",
    "-",
    "é",
    "  ",
    "NO",
    "Fever",
    "(",
    ")",
    "/",
    "'",
    "3",
    # Version 2: cues of every kind, terminations, new phrases, sentence ends.
    "?mets",
    "mets?",
    "metastases",
    "lung ca",
    "ca",
    "family history of",
    "father",
    "who",
    "had",
    "rule out",
    "concern for",
    "not excluded",
    ": no",
    "absent",
    "resolved",
    "no change",
    "no longer",
    "reports",
    "patient",
    "now",
    "worse on coughing",
    "point tenderness",
    "saddle anaesthesia",
    "legs feel weak",
    "foot drop",
    "backpain",
    "sciatica",
    "feverish",
    "between the shoulder blades",
    "lost 5 kg",
    "?",
    "!",
    ":",
    "\n",
]
# Rows of the diagnoses table the parity tests draw from: cancer in ICD-10-CM and in
# SNOMED (through the crosswalk), skin cancer and other conditions.
DIAGNOSIS_CODES = [
    ("C34.90", "ICD10CM"),
    ("c50.911", "ICD10CM"),
    ("C44.91", "ICD10CM"),
    ("R05.9", "ICD10CM"),
    ("93880001", "SNOMED"),
    ("254637007", "SNOMED"),
    ("49727002", "SNOMED"),
]
CODES = [
    "M54.5",
    "m54.50",
    "M54.6",
    "M54.60",
    "M54.9",
    "R05",
    "R05.1",
    "R04.2",
    "R04.29",
    "C34.1",
    "Z85.3",
    "Z87.891",
    "F17.210",
    "R33.9",
    "R32",
    "R53.1",
    "R53.83",
    "R50.9",
    "R06.02",
    "R07.9",
    "R20.2",
    "R63.4",
    "R63.0",
    "M62.81",
    "X99",
    "",
    "C44.91",
    "Z85.828",
    "Z85.820",
    "G83.4",
    "M21.371",
    "M81.0",
    "W19.XXXA",
    "M51.16",
    "O99.334",
    "Z72.0",
]
