"""The OMOP adapter through the vocabulary, on tests/fixtures/omop/vocabulary/.

The fixture is a CDM v5.3 export in lower-case file names, written from the CDM and
vocabulary table definitions: real OHDSI concept ids for the roots of the concept
sets (443392 Malignant neoplastic disease, 4163872 Plain chest X-ray, 4047491
Radiography of humerus), the fixture's own concepts (2,000,000,000 and above, in a
local vocabulary) below them in concept_ancestor. Conditions carry only source
values, as in MIMIC: ICD-9-CM codes without dots. Every expected row was worked out
by hand from the fixture and the value sets; comments say how.
"""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.sources import omop
from pipelines.sources.report import AdapterReport
from tests.support import FIXTURES
from tests.support.adapters import canonical, contract_violations, rows, run_cli

FIXTURE = FIXTURES / "omop" / "vocabulary"


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[Path, AdapterReport]:
    out = tmp_path_factory.mktemp("omop_vocabulary")
    return out, omop.convert(FIXTURE, out)


# 2101: person 21 born 1950-04-10, seen 2023-05-10 after the birthday -> 73; ICD-9-CM
#   724.5 -> M54.9 (back pain), 305.1 -> F17.200 (tobacco use disorder).
# 2102: person 22 born 1972 -> 51; V15.82 -> Z87.891 (a V code of ICD-9-CM, not an
#   ICD-10-CM code), 724.2 -> M54.50, 786.05 -> R06.02 (dyspnea), 780.79 -> R53.83;
#   observation 5001, V10.3 (history of breast cancer, filed as an observation as the
#   CDM files history codes) -> Z85.9: prior cancer.
# 2103: person 23 born 1940 -> 83; a concept known only as a descendant of 443392
#   (Malignant neoplastic disease) -> C80.1 (prior cancer); 722.10 -> M54.50.
EXPECTED_INTAKE = [
    canonical(
        "intake",
        encounter_id="2101",
        patient_id="21",
        encounter_date=date(2023, 5, 10),
        age_years=73,
        sex="M",
        dx_codes="F17.200;M54.9",
    ),
    canonical(
        "intake",
        encounter_id="2102",
        patient_id="22",
        encounter_date=date(2023, 6, 1),
        age_years=51,
        sex="F",
        dx_codes="M54.50;R06.02;R53.83;Z85.9;Z87.891",
    ),
    canonical(
        "intake",
        encounter_id="2103",
        patient_id="23",
        encounter_date=date(2023, 7, 15),
        age_years=83,
        sex="M",
        dx_codes="C80.1;M54.50",
    ),
]


def referral(rid, pid, day, modality, region, code=None, system=None) -> dict:
    return canonical(
        "referrals",
        referral_id=rid,
        patient_id=pid,
        referral_date=day,
        referral_type="imaging",
        modality=modality,
        body_region=region,
        code=code,
        code_system=system,
    )


# proc-4005: a local source concept whose "Maps to" is 4163872 (SNOMED 399208008).
# proc-4002: no concept, CPT 72148 as source value only.
# proc-4003: concept 4047491 itself, a limb X-ray: region other (no concept row, no code).
# proc-4004: a local concept named "Radiography of left knee": the name's keywords.
# proc-4001: a local concept below 4163872 in concept_ancestor only.
# proc-4006 (Consultation) is no imaging: unmapped.
EXPECTED_REFERRALS = [
    referral("proc-4005", "21", date(2023, 5, 11), "xray", "chest", "399208008", "SNOMED"),
    referral("proc-4002", "21", date(2023, 5, 12), "mri", "spine", "72148", "CPT"),
    referral("proc-4003", "22", date(2023, 6, 2), "xray", "other"),
    referral("proc-4004", "22", date(2023, 6, 3), "xray", "other"),
    referral("proc-4001", "23", date(2023, 7, 16), "xray", "chest"),
]


def diagnosis(pid: str, day: date, code: str) -> dict:
    return canonical(
        "diagnoses", patient_id=pid, diagnosis_date=day, code=code, code_system="ICD10CM"
    )


# 3001: tongue cancer, ICD-9-CM 141.9 a year before person 21's back-pain visit -> C80.1.
EXPECTED_DIAGNOSES = [
    diagnosis("21", date(2022, 5, 1), "C80.1"),
    diagnosis("21", date(2023, 5, 10), "F17.200"),
    diagnosis("21", date(2023, 5, 10), "M54.9"),
    diagnosis("22", date(2023, 6, 1), "M54.50"),
    diagnosis("22", date(2023, 6, 1), "R06.02"),
    diagnosis("22", date(2023, 6, 1), "R53.83"),
    diagnosis("22", date(2023, 6, 1), "Z85.9"),
    diagnosis("22", date(2023, 6, 1), "Z87.891"),
    diagnosis("23", date(2023, 7, 15), "C80.1"),
    diagnosis("23", date(2023, 7, 15), "M54.50"),
]

# Person 22 has two observation periods: observed from the first start to the last end.
EXPECTED_PATIENTS = [
    {
        "patient_id": "21",
        "death_date": None,
        "observation_start_date": date(2020, 1, 1),
        "observation_end_date": date(2023, 12, 31),
    },
    {
        "patient_id": "22",
        "death_date": None,
        "observation_start_date": date(2021, 1, 1),
        "observation_end_date": date(2023, 6, 30),
    },
    {
        "patient_id": "23",
        "death_date": date(2023, 9, 30),
        "observation_start_date": date(2019, 1, 1),
        "observation_end_date": date(2023, 9, 30),
    },
]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("intake", EXPECTED_INTAKE),
        ("referrals", EXPECTED_REFERRALS),
        ("diagnoses", EXPECTED_DIAGNOSES),
        ("patients", EXPECTED_PATIENTS),
    ],
)
def test_canonical_rows(converted, table: str, expected: list[dict]):
    out, _ = converted
    assert rows(out / f"{table}.parquet") == expected


def test_output_meets_the_contracts(converted):
    out, _ = converted
    assert contract_violations(out) == []


def test_empty_optional_table_is_a_note_and_the_rest_is_counted(converted):
    _, report = converted
    assert report.notes == [
        "measurement.csv: no rows (a header only); the optional OMOP measurement table was skipped"
    ]
    assert report.unmapped["conditions_without_visit"] == 1  # 3001: no visit that day
    assert report.unmapped["procedures_not_imaging_or_biopsy"] == 1  # proc-4006
    assert report.unmapped["conditions_without_icd10cm"] == 0
    assert report.mapped == {"intake": 3, "referrals": 5, "diagnoses": 10, "patients": 3}
    assert report.unmapped_codes == [
        {
            "kind": "procedure",
            "vocabulary": "Fixture",
            "code": "CONSULT",
            "name": "Consultation",
            "rows": 1,
        }
    ]


def test_without_the_vocabulary_the_source_codes_still_map(tmp_path: Path):
    """No concept, concept_relationship or concept_ancestor: the orders found only
    through them are lost, those of a source code or of the root concept id stay."""
    source = tmp_path / "in"
    shutil.copytree(FIXTURE, source)
    for name in ("concept.csv", "concept_relationship.csv", "concept_ancestor.csv"):
        (source / name).unlink()
    report = omop.convert(source, tmp_path / "out")
    kept = [(r["referral_id"], r["body_region"]) for r in rows(tmp_path / "out/referrals.parquet")]
    assert kept == [("proc-4002", "spine"), ("proc-4003", "other")]
    assert report.unmapped["procedures_not_imaging_or_biopsy"] == 4  # 4001, 4004-4006


def shift_years(source: Path, target: Path, years: int) -> None:
    """The fixture with every year moved `years` on, births included (so ages stay), as
    MIMIC shifts its dates into 2110-2201."""
    target.mkdir()
    for path in source.glob("*.csv"):
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"\b(19|20)(\d\d)(?=-\d\d-\d\d)", lambda m: str(int(m[0]) + years), text)
        if path.name == "person.csv":  # year_of_birth, the third column
            text = re.sub(
                r"^(\d+,\d+,)(\d{4})", lambda m: m[1] + str(int(m[2]) + years), text, flags=re.M
            )
        (target / path.name).write_text(text, encoding="utf-8")


@pytest.mark.slow
def test_date_shifted_source_stops_unless_future_dates_are_accepted(tmp_path: Path):
    """Shifted 150 years on, every visit lies after the load date: the run stops with
    exit 65 and says which setting would change that; with future_dates = "accept" the
    same source loads the rows of the unshifted fixture."""
    shifted = tmp_path / "shifted"
    shift_years(FIXTURE, shifted, 150)
    result, _ = run_cli("omop", shifted, tmp_path / "a.duckdb")
    assert result.returncode == 65, result.stderr
    assert 'future_dates = "accept"' in result.stderr + result.stdout
    result, counts = run_cli("omop", shifted, tmp_path / "b.duckdb", "--future-dates", "accept")
    assert result.returncode == 0, result.stderr
    assert counts == {"intake": 3, "referrals": 5, "diagnoses": 10}
    with duckdb.connect(str(tmp_path / "b.duckdb"), read_only=True) as con:
        visits = con.execute(
            "SELECT encounter_id, encounter_date, age_years FROM staging.intake ORDER BY 1"
        ).fetchall()
    assert visits == [
        ("2101", date(2173, 5, 10), 73),
        ("2102", date(2173, 6, 1), 51),
        ("2103", date(2173, 7, 15), 83),
    ]


def test_ids_written_as_floats_are_the_same_ids(tmp_path: Path, converted):
    """An export through floating point writes concept 4163872 as 4163872.0 (seen in a
    public CDM's concept_ancestor): the same concepts, the same rows."""
    source = tmp_path / "in"
    shutil.copytree(FIXTURE, source)
    for name in ("concept_ancestor.csv", "procedure_occurrence.csv"):
        path = source / name
        path.write_text(re.sub(r"\b(4163872|2000100002)\b", r"\1.0", path.read_text()))
    omop.convert(source, tmp_path / "out")
    first, _ = converted
    assert rows(tmp_path / "out/referrals.parquet") == rows(first / "referrals.parquet")
