"""The identifier guard on its own: which text it takes for an identifier, and caps.

The table of positives and negatives is the guard's promise in examples: each positive
is a form a red team used to get an identifier past the patterns; each negative is
ordinary clinical text that must pass untouched.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from pipelines.contracts import load_contract
from pipelines.validation.identifiers import (
    cap_values,
    capped_sql,
    reportable_names,
    scrub,
)

R = "[REDACTED]"

# (text, what free text becomes)
POSITIVES = [
    ("123-45-6789", R),
    ("123 45 6789", R),
    ("123.45.6789", R),
    ("１２３-４５-６７８９", R),  # full-width digits: NFKC makes them digits
    ("call +44 20 7946 0958 after 5", f"call {R} after 5"),
    ("(555) 123-4567", R),
    ("ring 020 7946 0958", f"ring {R}"),
    ("DOB 01/02/1960", R),
    ("born 1960-02-01", R),
    ("date of birth: 1 Feb 1960", R),
    ("lives at 12 Acacia Avenue", f"lives at {R}"),
    ("MR# 998877", R),
    ("MRN: A1234567", R),
    ("NHS no 943 476 5919", R),
    ("insurance id XK-99812", R),
    ("ref 99887766", f"ref {R}"),
    ("name(at)example.org", R),
    ("ann.lee@example.org", R),
    ("ann＠example.org", R),  # full-width at sign
    ("pt John Smith", R),
    ("seen with wife Mary Smith", f"seen with {R}"),
    ("Mr Jones", R),
    ("Mrs Jones", R),
    ("Ms Jones", R),
    ("Dr Jones", R),
    ("seen by Dr. J. McDonald today", f"seen by {R} today"),
    ("Mrs O'Brien", R),
    ("patient name: smith", R),
    ("Patient Name: John Smith", R),
]

NEGATIVES = [
    "Dr said rest",
    "pain 10/10",
    "L4-L5",
    "T12",
    "weight loss 5 kg in 3 months",
    "M54.5",
    "C79.51",
    "G89.29;M54.50",
    "2024-01-02",
    "back pain 3 weeks, worse at night",
    "pt reports night pain",
    "pt is anxious",
    "PT REPORTS BACK PAIN",
    "husband reports pt fell",
    "seen with wife",
    "MRI lumbar spine",
    "MR lumbar spine",
    "MS flare",
    "BP 120/80",
    "Hb 95 g/L",
    "temp 38.5",
    "SLR positive at 45 degrees",
    "fell from a 2 m ladder",
    "on 20 mg omeprazole twice daily",
    "CT chest 2023-05-04",
    "name of drug unknown",
    "-ve straight leg raise",
    "E000123",
    "R1-0001",
]


def scrubbed(table: str, column: str, values: list[str | None]):
    contract = load_contract(table)
    rows = pa.table(
        {column: pa.array(values, pa.string()), "source_row": range(2, len(values) + 2)}
    )
    return scrub(contract, rows)


@pytest.mark.parametrize(("text", "expected"), POSITIVES)
def test_identifier_in_free_text_is_redacted(text: str, expected: str):
    result = scrubbed("intake", "chief_complaint", [text])
    assert result.rows["chief_complaint"].to_pylist() == [expected]
    assert result.redacted >= 1
    assert result.flagged == []


@pytest.mark.parametrize("text", NEGATIVES)
def test_clinical_text_passes_untouched(text: str):
    result = scrubbed("intake", "chief_complaint", [text])
    assert result.rows["chief_complaint"].to_pylist() == [text]
    assert result.redacted == 0
    coded = scrubbed("intake", "dx_codes", [text])
    assert coded.rows["dx_codes"].to_pylist() == [text]
    assert [f.rule for f in coded.flagged if f.rule == "identifier"] == []


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("intake", "dx_codes"),
        ("intake", "pain_site"),
        ("intake", "smoking_status"),
        ("intake", "patient_id"),
        ("intake", "age_years"),
        ("intake", "encounter_date"),
        ("referrals", "code"),
        ("referrals", "code_system"),
        ("diagnoses", "code"),
    ],
)
def test_identifier_in_any_other_column_is_redacted_whole_and_flagged(table: str, column: str):
    values = ["Mr Jones", "ok", None, "１２３ ４５ ６７８９", "name(at)example.org"]
    result = scrubbed(table, column, values)
    assert result.rows[column].to_pylist() == [R, "ok", None, R, R]
    [flagged] = result.flagged
    assert (flagged.column, flagged.rule) == (column, "identifier")
    assert flagged.source_rows.to_pylist() == [2, 5, 6]
    assert flagged.values.to_pylist() == [R, R, R]


def test_snomed_ids_in_code_columns_are_not_record_numbers():
    # A SNOMED concept id is a long number; in free text, seven digits are a record number.
    assert scrubbed("diagnoses", "code", ["363346000"]).flagged == []
    assert scrubbed("referrals", "code", ["77477000"]).flagged == []
    assert scrubbed("intake", "dx_codes", ["363346000"]).rows["dx_codes"].to_pylist() == [R]


def test_full_width_digits_are_stored_as_digits():
    result = scrubbed("intake", "age_years", ["５４", "54"])
    assert result.rows["age_years"].to_pylist() == ["54", "54"]
    assert result.flagged == []


def test_ids_that_a_spreadsheet_would_run_are_flagged_as_formulas():
    ids = ["=cmd|' /C calc'!A0", "E2", "@SUM(1+1)", "+E4", "\t=1+1", "-7", "＝HYPERLINK(1)"]
    result = scrubbed("intake", "encounter_id", ids)
    [flagged] = result.flagged
    assert flagged.rule == "formula"
    # -7 is a number, not a formula; the full-width equals sign is an equals sign.
    assert flagged.source_rows.to_pylist() == [2, 4, 5, 6, 8]
    assert flagged.values.to_pylist() == [
        "=cmd|' /C calc'!A0",
        "@SUM(1+1)",
        "+E4",
        "\t=1+1",
        "=HYPERLINK(1)",
    ]
    # Free text may start with a sign: it is neutralised on output instead.
    assert scrubbed("intake", "chief_complaint", ["-ve SLR", "+ve SLR"]).flagged == []


AGES = ["104", "104.0", "1.04e2", "+104", "9.5E1", "1e400", "90", "54", "89.9", "-1", "old", None]
CAPPED = ["90", "90", "90", "90", "90", "90", "90", "54", "89.9", "-1", "old", None]


def test_ages_above_90_in_any_numeric_form_are_capped():
    age = load_contract("intake").column("age_years")
    capped, n = cap_values(age, pa.chunked_array([pa.array(AGES, pa.string())]))
    assert (capped.to_pylist(), n) == (CAPPED, 6)


def test_the_sql_cap_agrees_with_the_arrow_cap():
    age = load_contract("intake").column("age_years")
    con = duckdb.connect()
    con.register("ages", pa.table({"a": pa.array(AGES, pa.string())}))
    got = [r[0] for r in con.execute(f"SELECT {capped_sql(age, 'a')} FROM ages").fetchall()]
    assert got == CAPPED


def test_column_names_are_reported_without_identifiers():
    injection = "x' || (select content from read_text('/etc/passwd')) || '"
    names = ["favourite_colour", "mr jones", "１２３-４５-６７８９", "ann (at) x.org", injection]
    # Names are lower case when read: a title is found without regard to case.
    assert reportable_names(names) == ["favourite_colour", R, R, R, injection]
    assert reportable_names(["a" * 70]) == ["a" * 59 + "…"]
