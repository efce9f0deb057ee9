"""The FHIR R4 adapter on tests/fixtures/fhir/ (Synthea-style Bundles and Bulk NDJSON).

The bundles follow the FHIR R4 resource definitions and Synthea's layout (one
transaction Bundle per patient, references as urn:uuid:<id>); the NDJSON folder
holds the same resources one type per file, references as Type/id. Expected rows
were worked out by hand; pseudonymous ids are recomputed here with hashlib.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import date
from pathlib import Path

import pytest

from pipelines.errors import UserError
from pipelines.sources import fhir
from tests.support import FIXTURES as FIXTURES_ROOT
from tests.support.adapters import TABLES, all_values, canonical, contract_violations, rows, run_cli

FIXTURES = FIXTURES_ROOT / "fhir"
BUNDLES = FIXTURES / "bundles"
NDJSON = FIXTURES / "ndjson"


def pid(logical_id: str) -> str:
    """The pseudonym of a FHIR logical id: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(logical_id.encode()).hexdigest()[:16]


# enc-a1: patient A born 1962-09-30, seen 2024-03-01 -> 61; SNOMED low back pain ->
# M54.50; a cough coded SNOMED 49727002 and ICD-10-CM R05.1: the source's own
# ICD-10-CM wins. Smoking 449868002 on 2023-11-01 -> current.
# enc-a2: 2024-03-20 -> 61; dyspnea 267036007 -> R06.00, hemoptysis 66857006 -> R04.2;
# a former-smoker answer (8517006) the same day -> former.
# enc-b1: patient B, birth year 1930 only -> 94 -> 90; ICD-10-CM M54.6; NSCLC
# 254637007 -> C34.90 (prior cancer); fever 386661006 without an encounter but on the
# same day -> R50.9; hypertension 38341003 maps to no ICD-10-CM code. Smoking
# 266927001 -> unknown.
# Not in intake: enc-a3 (no condition), enc-a4 (no date), enc-c1 (patient C has no
# birth date).
EXPECTED_INTAKE = sorted(
    [
        canonical(
            "intake",
            encounter_id=pid("enc-a1"),
            patient_id=pid("patient-a"),
            encounter_date=date(2024, 3, 1),
            age_years=61,
            sex="F",
            smoking_status="current",
            dx_codes="M54.50;R05.1",
        ),
        canonical(
            "intake",
            encounter_id=pid("enc-a2"),
            patient_id=pid("patient-a"),
            encounter_date=date(2024, 3, 20),
            age_years=61,
            sex="F",
            smoking_status="former",
            dx_codes="R04.2;R06.00",
        ),
        canonical(
            "intake",
            encounter_id=pid("enc-b1"),
            patient_id=pid("patient-b"),
            encounter_date=date(2024, 5, 10),
            age_years=90,
            sex="M",
            smoking_status="unknown",
            dx_codes="C34.90;M54.6;R50.9",
        ),
    ],
    key=lambda r: (r["encounter_date"], r["encounter_id"]),
)


def referral(rid, patient, day, kind, modality, region, code=None, system=None, urgency=None):
    return canonical(
        "referrals",
        referral_id=pid(rid),
        patient_id=pid(patient),
        referral_date=day,
        referral_type=kind,
        modality=modality,
        body_region=region,
        code=code,
        code_system=system,
        urgency=urgency,
    )


# proc-a1 (SNOMED chest X-ray) and img-a1 (DICOM DX of the thorax, no code) are one
# X-ray: the coded Procedure is kept. sr-a1: CPT 72148, priority urgent, dated by
# authoredOn. sr-b1: text "Bone scan, whole body", priority stat -> emergency.
# img-b1: SNOMED 77477000 (CT, no region) + series body site thorax -> chest.
# proc-a2 (CPT 97110) is no imaging.
EXPECTED_REFERRALS = sorted(
    [
        referral(
            "Procedure/proc-a1", "patient-a", date(2024, 3, 2), "imaging", "xray", "chest",
            "399208008", "SNOMED",
        ),
        referral(
            "ServiceRequest/sr-a1", "patient-a", date(2024, 3, 21), "imaging", "mri", "spine",
            "72148", "CPT", "urgent",
        ),
        referral(
            "ServiceRequest/sr-b1", "patient-b", date(2024, 5, 11), "imaging", "bone_scan", None,
            urgency="emergency",
        ),
        referral(
            "ImagingStudy/img-b1", "patient-b", date(2024, 5, 12), "imaging", "ct", "chest",
            "77477000", "SNOMED",
        ),
    ],
    key=lambda r: (r["referral_date"], r["referral_id"]),
)  # fmt: skip


def dx(patient: str, day: date, code: str, system: str = "ICD10CM") -> dict:
    return canonical(
        "diagnoses", patient_id=pid(patient), diagnosis_date=day, code=code, code_system=system
    )


EXPECTED_DIAGNOSES = sorted(
    [
        dx("patient-a", date(2024, 3, 1), "M54.50"),
        dx("patient-a", date(2024, 3, 1), "R05.1"),
        dx("patient-a", date(2024, 3, 20), "R04.2"),
        dx("patient-a", date(2024, 3, 20), "R06.00"),
        dx("patient-a", date(2024, 4, 10), "R53.83"),  # fatigue of the undated encounter
        dx("patient-b", date(2024, 5, 10), "C34.90"),
        dx("patient-b", date(2024, 5, 10), "M54.6"),
        dx("patient-b", date(2024, 5, 10), "R50.9"),
        dx("patient-b", date(2024, 5, 10), "38341003", "SNOMED"),
        dx("patient-c", date(2024, 6, 1), "M54.9"),
    ],
    key=lambda r: (r["patient_id"], r["diagnosis_date"], r["code"]),
)

EXPECTED_READ = {
    "Patient": 3,
    "Encounter": 6,
    "Condition": 11,  # one of them refuted
    "Observation": 5,
    "Procedure": 3,  # one of them not done
    "ServiceRequest": 2,
    "ImagingStudy": 2,
}
EXPECTED_UNMAPPED = {
    "resources_of_other_types": 1,  # the Organization
    "persons_sex_unknown": 0,
    "conditions_without_icd10cm": 1,  # hypertension
    "conditions_without_visit": 0,
    "smoking_observations": 1,  # patient C "declined to answer"
    "procedures_not_imaging_or_biopsy": 1,  # proc-a2
    "conditions_without_diagnosis_code": 0,
}
EXPECTED_REJECTED = {
    "Encounter_excluded_by_status": 0,
    "Condition_excluded_by_status": 1,  # cond-a6, lung cancer refuted: no C34 for enc-a1
    "Observation_excluded_by_status": 0,
    "Procedure_excluded_by_status": 1,  # proc-b1, MRI not done: no referral
    "ServiceRequest_excluded_by_status": 0,
    "ImagingStudy_excluded_by_status": 0,
    "visits_without_date": 1,  # enc-a4
    "visits_without_person": 0,
    "visits_of_persons_without_birth_year": 1,  # enc-c1
    "visits_before_birth": 0,
    "persons_without_birth_year": 1,  # patient C
    "referrals_without_date": 0,
    "referrals_merged_as_duplicates": 1,  # img-a1 into proc-a1
    "conditions_without_date": 0,
    "patient_periods_without_person": 0,
    "observation_periods_ending_before_start": 0,
}


@pytest.fixture(scope="module", params=["bundles", "ndjson"])
def converted(request, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp(f"fhir_{request.param}")
    return out, fhir.convert(FIXTURES / request.param, out)


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
    assert report.read == EXPECTED_READ
    # No fixture patient has a deceasedDateTime: no patients row.
    assert report.mapped == {"intake": 3, "referrals": 4, "diagnoses": 10, "patients": 0}
    assert report.unmapped == EXPECTED_UNMAPPED
    assert report.rejected == EXPECTED_REJECTED


def test_names_addresses_telecom_identifiers_never_reach_the_output(converted):
    out, _ = converted
    text = all_values(out)
    for secret in (
        "MRN-SECRET",  # identifier
        "999-12-3456",  # SSN identifier
        "Secretname",  # name
        "Alicia",
        "555-0100",  # telecom
        "secret-b@",
        "Secret Street",  # address
        "Secretville",
        "patient-a",  # the raw logical id: only its pseudonym is written
        "enc-a1",
    ):
        assert secret not in text


def test_small_batches_give_the_same_rows(tmp_path: Path, converted):
    """One bundle per batch reads the folder in three batches: same output."""
    first, _ = converted
    out = tmp_path / "out"
    fhir.convert(BUNDLES, out, batch_files=1)
    for table in TABLES:
        assert rows(out / f"{table}.parquet") == rows(first / f"{table}.parquet")


def test_broken_json_names_the_file(tmp_path: Path):
    src = tmp_path / "in"
    shutil.copytree(BUNDLES, src)
    (src / "patient-z.json").write_text('{"resourceType": "Bundle", "entry": [', encoding="utf-8")
    with pytest.raises(UserError, match=r"patient-z\.json.*not valid FHIR JSON"):
        fhir.convert(src, tmp_path / "out")  # in one batch with the good files


def test_folder_without_fhir_files(tmp_path: Path):
    with pytest.raises(UserError, match="no FHIR files found"):
        fhir.convert(tmp_path, tmp_path / "out")


@pytest.mark.slow
def test_run_through_the_flow(tmp_path: Path):
    result, counts = run_cli("fhir", BUNDLES, tmp_path / "w.duckdb")
    assert result.returncode == 0, result.stderr
    assert "unmapped  procedures_not_imaging_or_biopsy" in result.stdout
    assert counts == {"intake": 3, "referrals": 4, "diagnoses": 10}


def test_icd9_codings_are_never_read_as_icd10(tmp_path: Path):
    """A Condition coded in ICD-9-CM (system http://hl7.org/fhir/sid/icd-9-cm) E879.8, a
    misadventure, is no ICD-10-CM E87.98: enc-a1 keeps the dx_codes and diagnoses it had,
    and the condition is counted as one without an ICD-10-CM code."""
    src = tmp_path / "ndjson"
    shutil.copytree(NDJSON, src)
    condition = (
        '{"resourceType":"Condition","id":"cond-icd9","code":{"coding":[{"system":'
        '"http://hl7.org/fhir/sid/icd-9-cm","code":"E879.8","display":"Other specified '
        'procedures as the cause of abnormal reaction of patient"}]},"subject":{"reference":'
        '"Patient/patient-a"},"encounter":{"reference":"Encounter/enc-a1"},'
        '"onsetDateTime":"2024-03-01T09:00:00-05:00"}\n'
    )
    with (src / "Condition.ndjson").open("a", encoding="utf-8") as f:
        f.write(condition)
    before, after = tmp_path / "before", tmp_path / "after"
    first = fhir.convert(NDJSON, before)
    report = fhir.convert(src, after)
    assert rows(after / "intake.parquet") == rows(before / "intake.parquet")
    assert rows(after / "diagnoses.parquet") == rows(before / "diagnoses.parquet")
    assert "E879.8" not in all_values(after)
    assert report.unmapped["conditions_without_icd10cm"] == (
        first.unmapped["conditions_without_icd10cm"] + 1
    )


def test_limb_xray_staged_lung_cancer_and_death(tmp_path: Path):
    """Written from FHIR R4: a wrist radiograph whose ImagingStudy series says only DX
    and a body site shown as "Wrist" is imaging, X-ray, region other (never spine or
    chest); a TNM stage 4 small-cell lung cancer (SNOMED 67841000119103) is C34.90;
    Patient.deceasedDateTime is the patient's death date."""
    src = tmp_path / "ndjson"
    src.mkdir()
    (src / "Patient.ndjson").write_text(
        '{"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1950-02-01",'
        '"deceasedDateTime":"2024-05-20T08:00:00Z"}\n',
        encoding="utf-8",
    )
    (src / "Encounter.ndjson").write_text(
        '{"resourceType":"Encounter","id":"e1","status":"finished",'
        '"subject":{"reference":"Patient/p1"},"period":{"start":"2024-03-01T09:00:00Z"}}\n',
        encoding="utf-8",
    )
    (src / "Condition.ndjson").write_text(
        '{"resourceType":"Condition","id":"c1","code":{"coding":[{"system":'
        '"http://snomed.info/sct","code":"67841000119103"}]},"subject":{"reference":'
        '"Patient/p1"},"encounter":{"reference":"Encounter/e1"},'
        '"onsetDateTime":"2024-03-01"}\n',
        encoding="utf-8",
    )
    (src / "ImagingStudy.ndjson").write_text(
        '{"resourceType":"ImagingStudy","id":"i1","status":"available","subject":'
        '{"reference":"Patient/p1"},"started":"2024-03-02T10:00:00Z","series":[{"uid":'
        '"1.2.3","modality":{"system":"http://dicom.nema.org/resources/ontology/DCM",'
        '"code":"DX"},"bodySite":{"display":"Wrist"}}]}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    fhir.convert(src, out)
    (referral,) = rows(out / "referrals.parquet")
    assert (referral["referral_type"], referral["modality"], referral["body_region"]) == (
        "imaging",
        "xray",
        "other",
    )
    (visit,) = rows(out / "intake.parquet")
    assert visit["dx_codes"] == "C34.90"
    assert rows(out / "patients.parquet") == [
        {
            "patient_id": pid("p1"),
            "death_date": date(2024, 5, 20),
            "observation_start_date": None,
            "observation_end_date": None,
        }
    ]
