"""The OMOP CDM adapter on the fixture in tests/fixtures/omop/.

The fixture follows the OMOP CDM v5.4 table definitions (PERSON in upper case, as
some exports write it; concept ids of 2,000,000,000 and above are the fixture's own
local concepts, described in its concept.csv). Every expected row below was worked
out by hand from the fixture and the value sets; comments say how.
"""

from __future__ import annotations

import gzip
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.errors import UserError
from pipelines.sources import omop
from pipelines.sources.mapping import build_canonical
from pipelines.sources.report import AdapterReport
from tests.support import FIXTURES as FIXTURES_ROOT
from tests.support.adapters import TABLES, all_values, canonical, contract_violations, rows, run_cli

FIXTURE = FIXTURES_ROOT / "omop"


def intake(**values: object) -> dict:
    return canonical("intake", **values)


# Visit 101: person 1 born 1960-06-15, seen 2024-03-10, before the birthday -> 63.
# Conditions M54.50 (source value) and ICD-9-CM 724.2 through the source concept ->
# M54.50 again. Smoking: 449868002 (current) on 2023-01-01 is the latest before.
# Visit 102: 2024-07-01, after the birthday -> 64; ICD-9-CM 724.1 -> M54.6, 786.2 ->
# R05.9, 783.21 -> R63.4; 8517006 (former) on 2024-06-01 is now the latest.
# Visit 103: person 2, year of birth only, 2024 - 1985 = 39; sex from source value F;
# SNOMED 279039007 (standard concept) -> M54.50; ICD-10-CM R63.4 (source concept);
# R05.1 has no visit id but the same date as visit 103. "Never smoker" as text.
# Visit 104: person 3 born 1925-01-01 -> 99 -> capped at 90; SNOMED 161891005 ->
# M54.9, ICD-9-CM 162.3 -> C34.10 and 198.5 -> C79.51 (both malignant: prior cancer).
# Her smoking observation answers "declined to answer": unmapped, so NULL.
# Visit 107: person 5, 2024 - 1970 = 54, no gender concept nor source value -> U;
# ZZZ999 maps to nothing; "Ex-smoker" (v5.4 value_source_value) on 2024-04-01 -> former.
EXPECTED_INTAKE = [
    intake(
        encounter_id="104",
        patient_id="3",
        encounter_date=date(2024, 2, 2),
        age_years=90,
        sex="F",
        dx_codes="C34.10;C79.51;M54.9",
    ),
    intake(
        encounter_id="101",
        patient_id="1",
        encounter_date=date(2024, 3, 10),
        age_years=63,
        sex="M",
        smoking_status="current",
        dx_codes="M54.50",
    ),
    intake(
        encounter_id="107",
        patient_id="5",
        encounter_date=date(2024, 4, 4),
        age_years=54,
        sex="U",
        smoking_status="former",
    ),
    intake(
        encounter_id="103",
        patient_id="2",
        encounter_date=date(2024, 5, 5),
        age_years=39,
        sex="F",
        smoking_status="never",
        dx_codes="M54.50;R05.1;R63.4",
    ),
    intake(
        encounter_id="102",
        patient_id="1",
        encounter_date=date(2024, 7, 1),
        age_years=64,
        sex="M",
        smoking_status="former",
        dx_codes="M54.6;R05.9;R63.4",
    ),
]


def referral(rid, pid, day, kind, modality, region, code=None, system=None) -> dict:
    return canonical(
        "referrals",
        referral_id=rid,
        patient_id=pid,
        referral_date=day,
        referral_type=kind,
        modality=modality,
        body_region=region,
        code=code,
        code_system=system,
    )


# proc-205: ICD-10-PCS BR39ZZZ via the source concept; proc-206: HCPCS G0297 (a LOCAL
# code); meas-7001: text "CT chest with contrast"; proc-209: CPT 32408 as a bare source
# value; proc-201: CPT 72148 as source value, proc-202 through the concept; proc-203:
# SNOMED 399208008; proc-204 ("Chest X-ray 2 views", same patient and day) is merged
# into proc-203; obs-5006: text "Chest X-ray PA and lateral" in observation.
# proc-207 (CPT 97110, exercises) is no imaging; proc-208 has no date.
EXPECTED_REFERRALS = [
    referral("proc-205", "3", date(2024, 2, 3), "imaging", "mri", "spine", "BR39ZZZ", "ICD10PCS"),
    referral("proc-206", "3", date(2024, 2, 10), "imaging", "ct", "chest", "G0297", "LOCAL"),
    referral("meas-7001", "3", date(2024, 2, 15), "imaging", "ct", "chest"),
    referral("proc-209", "3", date(2024, 2, 20), "biopsy", "needle", "chest", "32408", "CPT"),
    referral("proc-201", "1", date(2024, 3, 12), "imaging", "mri", "spine", "72148", "CPT"),
    referral("proc-203", "2", date(2024, 5, 6), "imaging", "xray", "chest", "399208008", "SNOMED"),
    referral("obs-5006", "2", date(2024, 5, 10), "imaging", "xray", "chest"),
    referral("proc-202", "1", date(2024, 7, 3), "imaging", "mri", "spine", "72148", "CPT"),
]


def dx(pid: str, day: date, code: str, system: str = "ICD10CM") -> dict:
    return canonical("diagnoses", patient_id=pid, diagnosis_date=day, code=code, code_system=system)


# One per condition with a date and a code (1001 and 1015 give the same row; 1012 has
# no date; 1013 has no code; 1011 and 1014 have no intake row but are diagnoses).
EXPECTED_DIAGNOSES = [
    dx("1", date(2024, 3, 10), "M54.50"),
    dx("1", date(2024, 7, 1), "M54.6"),
    dx("1", date(2024, 7, 1), "R05.9"),
    dx("1", date(2024, 7, 1), "R63.4"),
    dx("2", date(2024, 5, 5), "M54.50"),
    dx("2", date(2024, 5, 5), "R05.1"),
    dx("2", date(2024, 5, 5), "R63.4"),
    dx("3", date(2024, 2, 2), "C34.10"),
    dx("3", date(2024, 2, 2), "C79.51"),
    dx("3", date(2024, 2, 2), "M54.9"),
    dx("4", date(2024, 1, 1), "M54.5"),
    dx("5", date(2024, 6, 6), "C79.51"),
]

EXPECTED_UNMAPPED = {
    "persons_sex_unknown": 1,  # person 5
    "conditions_without_icd10cm": 1,  # ZZZ999
    "conditions_without_visit": 1,  # C79.51 of person 5 on a day without a visit
    "smoking_observations": 1,  # 72166-2 answered "declined to answer"
    "procedures_not_imaging_or_biopsy": 1,  # CPT 97110
    "conditions_without_diagnosis_code": 1,  # ZZZ999
}
EXPECTED_REJECTED = {
    "visits_without_date": 1,  # visit 106
    "visits_without_person": 0,
    "visits_of_persons_without_birth_year": 1,  # visit 105 of person 4
    "visits_before_birth": 0,
    "persons_without_birth_year": 1,  # person 4
    "referrals_without_date": 1,  # proc-208
    "referrals_merged_as_duplicates": 1,  # proc-204 into proc-203
    "conditions_without_date": 1,  # condition 1012
    "patient_periods_without_person": 0,
    "observation_periods_ending_before_start": 0,
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AdapterReport]:
    out = tmp_path_factory.mktemp("omop_out")
    return out, omop.convert(FIXTURE, out)


@pytest.mark.parametrize("table", TABLES)
def test_canonical_rows(converted, table: str):
    out, _ = converted
    expected = {
        "intake": EXPECTED_INTAKE,
        "referrals": EXPECTED_REFERRALS,
        "diagnoses": EXPECTED_DIAGNOSES,
    }
    assert rows(out / f"{table}.parquet") == expected[table]


def test_output_meets_the_contracts(converted):
    out, _ = converted
    assert contract_violations(out) == []


def test_report_counts(converted):
    _, report = converted
    # patients: person 3's death (death.csv), the one censoring record of the fixture.
    assert report.mapped == {"intake": 5, "referrals": 8, "diagnoses": 12, "patients": 1}
    assert report.unmapped == EXPECTED_UNMAPPED
    assert report.rejected == EXPECTED_REJECTED
    assert report.read["person"] == 5
    assert report.read["visit_occurrence"] == 8
    assert report.read["condition_occurrence"] == 15


def test_identifiers_never_reach_the_output(converted):
    out, _ = converted
    assert "MRN-SECRET" not in all_values(out)  # person_source_value


def test_parquet_gzip_and_name_case_read_the_same(tmp_path: Path, converted):
    """The same CDM as Parquet, gzipped CSV and upper-case names gives the same rows."""
    src = tmp_path / "cdm"
    src.mkdir()
    for path in FIXTURE.glob("*.csv"):
        name = path.name.lower()
        if name == "person.csv":
            duckdb.sql(
                f"COPY (SELECT * FROM read_csv('{path}', header = true)) "
                f"TO '{src / 'person.parquet'}' (FORMAT parquet)"
            )
        elif name == "visit_occurrence.csv":
            with gzip.open(src / "visit_occurrence.csv.gz", "wb") as f:
                f.write(path.read_bytes())
        elif name == "observation.csv":
            shutil.copy(path, src / "OBSERVATION.CSV")
        else:
            shutil.copy(path, src / path.name)
    out = tmp_path / "out"
    omop.convert(src, out)
    first, _ = converted
    for table in TABLES:
        assert rows(out / f"{table}.parquet") == rows(first / f"{table}.parquet")


def test_without_concept_table_only_source_values_map(tmp_path: Path):
    """Without concept.csv, concept ids say nothing: only source values and text map."""
    src = tmp_path / "cdm"
    shutil.copytree(FIXTURE, src)
    (src / "concept.csv").unlink()
    out = tmp_path / "out"
    report = omop.convert(src, out)
    by_visit = {r["encounter_id"]: r for r in rows(out / "intake.parquet")}
    # 103 loses SNOMED 279039007 and ICD-10-CM R63.4 (both concept-only); 104 loses
    # the backache concept; 101 keeps M54.50 from its source value.
    assert by_visit["103"]["dx_codes"] == "R05.1"
    assert by_visit["104"]["dx_codes"] == "C34.10;C79.51"
    assert by_visit["101"]["dx_codes"] == "M54.50"
    # Person 1's smoking answers were concepts only.
    assert by_visit["101"]["smoking_status"] is None
    referral_ids = [r["referral_id"] for r in rows(out / "referrals.parquet")]
    # proc-204's text now stands alone; 202, 203, 205, 206 had codes only as concepts.
    assert referral_ids == ["meas-7001", "proc-209", "proc-201", "proc-204", "obs-5006"]
    assert report.unmapped["procedures_not_imaging_or_biopsy"] == 5
    assert report.unmapped["conditions_without_icd10cm"] == 5  # 1005, 1006, 1008, 1013, 1015


def test_conversion_connection_reads_no_file_once_the_sources_are_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The connection that read the CDM files can read no other file while it maps them."""
    tried: list[str] = []

    def build_then_try_a_file(con: duckdb.DuckDBPyConnection, *args, **kwargs):
        result = build_canonical(con, *args, **kwargs)
        try:
            con.execute("SELECT content FROM read_text('/etc/passwd')").fetchall()
            tried.append("read")
        except duckdb.PermissionException:
            tried.append("refused")
        return result

    monkeypatch.setattr(omop, "build_canonical", build_then_try_a_file)
    report = omop.convert(FIXTURE, tmp_path / "out")
    assert tried == ["refused"]
    # The files are still written, and counted from what was written: 5 visits.
    assert report.mapped["intake"] == 5
    assert len(rows(tmp_path / "out" / "intake.parquet")) == 5


def test_missing_table_is_named(tmp_path: Path):
    shutil.copytree(FIXTURE, tmp_path / "cdm")
    (tmp_path / "cdm" / "observation.csv").unlink()
    with pytest.raises(UserError, match=r"OMOP CDM table\(s\) observation not found"):
        omop.convert(tmp_path / "cdm", tmp_path / "out")


def test_missing_column_names_file_and_column(tmp_path: Path):
    shutil.copytree(FIXTURE, tmp_path / "cdm")
    visits = tmp_path / "cdm" / "visit_occurrence.csv"
    visits.write_text(visits.read_text().replace("visit_start_date", "start"), encoding="utf-8")
    with pytest.raises(
        UserError, match=r"visit_occurrence\.csv: missing column\(s\) visit_start_date"
    ):
        omop.convert(tmp_path / "cdm", tmp_path / "out")


@pytest.mark.slow
def test_run_through_the_flow(tmp_path: Path):
    result, counts = run_cli("omop", FIXTURE, tmp_path / "w.duckdb")
    assert result.returncode == 0, result.stderr
    assert "rejected  visits_without_date" in result.stdout
    assert counts == {"intake": 5, "referrals": 8, "diagnoses": 12}
    assert (tmp_path / "converted" / "omop" / "intake.parquet").exists()
    # The unmapped codes, by name where the concept table has one, in the summary and
    # in ops.unmapped_codes (EXPECTED_UNMAPPED_CODES).
    assert "97110" in result.stdout and "Tobacco smoking status" in result.stdout
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        listed = con.execute(
            "SELECT kind, vocabulary, code, name, rows FROM ops.unmapped_codes ORDER BY kind"
        ).fetchall()
    assert [
        dict(zip(("kind", "vocabulary", "code", "name", "rows"), r, strict=True)) for r in listed
    ] == (EXPECTED_UNMAPPED_CODES)


# One record each (EXPECTED_UNMAPPED): ZZZ999 has no concept (vocabulary unknown);
# CPT 97110 and the question 72166-2 of the unanswered smoking observation are named by
# concept.csv; person 5's gender concept 0 is no code.
EXPECTED_UNMAPPED_CODES = [
    {"kind": "condition", "vocabulary": "unknown", "code": "ZZZ999", "name": None, "rows": 1},
    {
        "kind": "procedure",
        "vocabulary": "CPT4",
        "code": "97110",
        "name": "Therapeutic procedure, 1 or more areas, each 15 minutes; therapeutic exercises",
        "rows": 1,
    },
    {"kind": "sex", "vocabulary": "unknown", "code": None, "name": None, "rows": 1},
    {
        "kind": "smoking",
        "vocabulary": "LOINC",
        "code": "72166-2",
        "name": "Tobacco smoking status",
        "rows": 1,
    },
]


def test_unmapped_codes_are_listed(converted):
    _, report = converted
    assert report.unmapped_codes == EXPECTED_UNMAPPED_CODES


def test_age_counts_the_birthday_to_the_day_and_only_required_columns_are_needed(tmp_path: Path):
    """A minimal CDM (required columns only): age turns on the birthday, not the day before.

    Person 1 born 1960-06-15: 63 on 2024-06-14, 64 on 2024-06-15. Person 2 born in
    June 1960, day unknown: 64 from 2024-06-01 (the day is not held against them).
    Person 3 born 2025: a visit in 2024 is before birth and rejected.
    """
    cdm = tmp_path / "cdm"
    cdm.mkdir()
    files = {
        "person.csv": "person_id,year_of_birth,month_of_birth,day_of_birth\n"
        "1,1960,6,15\n2,1960,6,\n3,2025,,\n",
        "visit_occurrence.csv": "visit_occurrence_id,person_id,visit_start_date\n"
        "11,1,2024-06-14\n12,1,2024-06-15\n21,2,2024-06-01\n22,2,2024-05-31\n31,3,2024-01-01\n",
        "condition_occurrence.csv": "condition_occurrence_id,person_id,condition_start_date,"
        "visit_occurrence_id,condition_source_value\n"
        "1,1,2024-06-14,11,M54.9\n2,1,2024-06-15,12,M54.9\n3,2,2024-06-01,21,M54.9\n"
        "4,2,2024-05-31,22,M54.9\n5,3,2024-01-01,31,M54.9\n",
        "procedure_occurrence.csv": "procedure_occurrence_id,person_id,procedure_date\n",
        "observation.csv": "observation_id,person_id,observation_date\n",
    }
    for name, text in files.items():
        (cdm / name).write_text(text, encoding="utf-8")
    report = omop.convert(cdm, tmp_path / "out")
    ages = {r["encounter_id"]: r["age_years"] for r in rows(tmp_path / "out" / "intake.parquet")}
    assert ages == {"11": 63, "12": 64, "21": 64, "22": 63}
    assert report.rejected["visits_before_birth"] == 1
    assert report.unmapped["persons_sex_unknown"] == 3  # no gender column at all


def copy_fixture(tmp_path: Path) -> Path:
    src = tmp_path / "cdm"
    shutil.copytree(FIXTURE, src)
    return src


def append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("", "empty (0 bytes)"),
        ("measurement_id,person_id,measurement_date\n", "no rows (a header only)"),
    ],
)
def test_an_empty_optional_table_is_skipped_with_a_note(
    tmp_path: Path, converted, text: str, what: str
):
    src = copy_fixture(tmp_path)
    (src / "measurement.csv").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    report = omop.convert(src, out)
    assert report.notes == [
        f"measurement.csv: {what}; the optional OMOP measurement table was skipped"
    ]
    assert "measurement" not in report.read
    assert f"  note: {report.notes[0]}" in report.summary_lines()
    # Only the CT of measurement 7001 is gone; the other tables map as before.
    first, _ = converted
    assert [r for r in rows(first / "referrals.parquet") if r["referral_id"] != "meas-7001"] == (
        rows(out / "referrals.parquet")
    )
    assert rows(out / "intake.parquet") == rows(first / "intake.parquet")


def test_an_empty_required_table_is_still_an_error(tmp_path: Path):
    src = copy_fixture(tmp_path)
    (src / "visit_occurrence.csv").write_text("", encoding="utf-8")
    with pytest.raises(UserError, match=r"visit_occurrence\.csv: missing column\(s\)"):
        omop.convert(src, tmp_path / "out")


def test_icd9_e_codes_are_never_read_as_icd10(tmp_path: Path, converted):
    """ICD-9-CM E879.8 (a misadventure) would be ICD-10-CM E87.98 with its dot dropped.

    Condition 1016 names it through an ICD9CM source concept, 1017 only as a source
    value (no concept): neither reaches dx_codes or diagnoses, and both are counted as
    conditions without an ICD-10-CM code nor any diagnosis code.
    """
    src = copy_fixture(tmp_path)
    append(
        src / "concept.csv",
        "2000000014,Other misadventures during medical care,Observation,ICD9CM,"
        "4-dig billing E code,,E879.8,1970-01-01,2099-12-31,",
    )
    append(
        src / "condition_occurrence.csv",
        "1016,1,0,2024-03-10,,,,32817,,,101,,E879.8,2000000014,,0",
    )
    append(src / "condition_occurrence.csv", "1017,1,0,2024-07-01,,,,32817,,,102,,E879.8,0,,0")
    out = tmp_path / "out"
    report = omop.convert(src, out)
    first, before = converted
    assert rows(out / "intake.parquet") == rows(first / "intake.parquet")
    assert rows(out / "diagnoses.parquet") == rows(first / "diagnoses.parquet")
    assert "E879.8" not in all_values(out)
    assert report.unmapped["conditions_without_icd10cm"] == (
        before.unmapped["conditions_without_icd10cm"] + 2
    )
    assert report.read["condition_occurrence"] == 17
