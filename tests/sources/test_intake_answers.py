"""The intake form in OMOP and FHIR: chief complaint, yes/no fields, numbers, text and
the smoking status of a visit, on small sources written by hand from the OMOP CDM v5.4
table definitions (note, observation) and FHIR R4 (Encounter.reasonCode, Observation).

Concept ids of 2,000,000,000 and above are this file's own local concepts; their
codes are the standard ones (LOINC 10154-3 "Chief complaint Narrative - Reported",
72514-3 pain severity 0-10, 72166-2 tobacco smoking status; SNOMED 373066001 Yes,
373067005 No, 266919005 never smoker, 8517006 former smoker). Intake-form fields
without a standard code are named by the site's own code, the column name
(schemas/value_sets/intake_fields.csv).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from pipelines.sources import fhir, omop
from tests.sources.test_fhir import pid
from tests.support.adapters import canonical, rows

OMOP_TABLES = {
    "person": [
        "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth",
        "1,8507,1970,1,1",
    ],
    "visit_occurrence": [
        "visit_occurrence_id,person_id,visit_concept_id,visit_start_date",
        "11,1,9202,2024-05-01",
        "12,1,9202,2024-06-01",
        "13,1,9202,2024-07-01",
    ],
    "condition_occurrence": [
        "condition_occurrence_id,person_id,condition_concept_id,condition_start_date",
    ],
    "procedure_occurrence": [
        "procedure_occurrence_id,person_id,procedure_concept_id,procedure_date",
    ],
    "concept": [
        "concept_id,concept_name,domain_id,vocabulary_id,concept_class_id,standard_concept,"
        "concept_code",
        "8507,MALE,Gender,Gender,Gender,S,M",
        "2000000101,Chief complaint Narrative - Reported,Meas Value,LOINC,LOINC Component,S,"
        "10154-3",
        "2000000102,Pain severity - 0-10 verbal numeric rating,Observation,LOINC,Clinical "
        "Observation,S,72514-3",
        "2000000103,Tobacco smoking status,Observation,LOINC,Clinical Observation,S,72166-2",
        "2000000104,Yes,Meas Value,SNOMED,Qualifier Value,S,373066001",
        "2000000105,Never smoker,Observation,SNOMED,Clinical Finding,S,266919005",
        "2000000106,Former smoker,Observation,SNOMED,Clinical Finding,S,8517006",
        "2000000107,Progress note,Meas Value,LOINC,LOINC Component,S,11506-3",
    ],
    "note": [
        "note_id,person_id,note_date,note_type_concept_id,note_class_concept_id,note_title,"
        "note_text,encoding_concept_id,language_concept_id,visit_occurrence_id",
        '31,1,2024-05-01,32817,2000000101,,"Low back pain for 3 weeks, wakes at night",0,0,11',
        '32,1,2024-05-01,32817,2000000107,Progress note,"Reviewed, plan MRI",0,0,11',
        '33,1,2024-06-01,32817,0,Chief Complaint,"Back pain again",0,0,',
    ],
    "observation": [
        "observation_id,person_id,observation_concept_id,observation_date,"
        "observation_type_concept_id,value_as_number,value_as_string,value_as_concept_id,"
        "visit_occurrence_id,observation_source_value",
        "41,1,0,2024-05-01,32817,,,2000000104,11,night_pain",
        "42,1,0,2024-05-01,32817,,No,0,11,fever",
        "43,1,2000000102,2024-05-01,32817,7.0,,0,11,",
        "44,1,0,2024-05-01,32817,,lumbar,0,11,pain_site",
        "45,1,0,2024-05-01,32817,,maybe,0,11,unexplained_weight_loss",
        "46,1,2000000103,2024-05-01,32817,,,2000000105,11,",
        "47,1,2000000103,2024-01-01,32817,,,2000000106,,",
        "48,1,0,2024-06-01,32817,,Y,0,12,back_pain",
        "49,1,0,2024-07-01,32817,,Yes,0,,night_pain",
    ],
}


def intake(**values: object) -> dict:
    return canonical("intake", **values)


# Visit 11 (2024-05-01, person 1 born 1970-01-01 -> 54, male): note 31 is of class
# 10154-3, the chief complaint; note 32 (a progress note) is not. Observation 41
# answers night_pain with the Yes concept -> TRUE; 42 fever "No" -> FALSE; 43 is
# 72514-3 with 7.0 -> pain_score 7; 44 pain_site "lumbar"; 45 "maybe" is neither yes
# nor no -> NULL; 46 smoking at this visit: never smoker.
# Visit 12 (2024-06-01): no condition, one answer (48, back_pain "Y" -> TRUE), so a
# presentation. Note 33 is titled "Chief Complaint" but has no visit: not read.
# Smoking: visit 11's own status says nothing of visit 12; observation 47 (former,
# 2024-01-01, no visit) is the latest one outside a visit -> former.
# Visit 13 (2024-07-01): observation 49 has no visit id, and nothing else -> no row.
EXPECTED_OMOP = [
    intake(
        encounter_id="11",
        patient_id="1",
        encounter_date=date(2024, 5, 1),
        age_years=54,
        sex="M",
        smoking_status="never",
        chief_complaint="Low back pain for 3 weeks, wakes at night",
        pain_site="lumbar",
        pain_score=7,
        night_pain=True,
        fever=False,
    ),
    intake(
        encounter_id="12",
        patient_id="1",
        encounter_date=date(2024, 6, 1),
        age_years=54,
        sex="M",
        smoking_status="former",
        back_pain=True,
    ),
]


def test_omop_note_and_observations_fill_the_intake_form(tmp_path: Path):
    src = tmp_path / "cdm"
    src.mkdir()
    for table, lines in OMOP_TABLES.items():
        (src / f"{table}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    omop.convert(src, out)
    assert rows(out / "intake.parquet") == EXPECTED_OMOP


def _resource(kind: str, id_: str, **elements: object) -> dict:
    return {"resourceType": kind, "id": id_, **elements}


def _observation(id_: str, enc: str, system: str, code: str, **value: object) -> dict:
    return _resource(
        "Observation",
        id_,
        status="final",
        code={"coding": [{"system": system, "code": code}]},
        subject={"reference": "Patient/p1"},
        encounter={"reference": f"Encounter/{enc}"},
        effectiveDateTime="2024-05-01",
        **value,
    )


INTAKE = "urn:redflags:intake-field"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
FHIR_RESOURCES = [
    _resource("Patient", "p1", gender="female", birthDate="1980-08-15"),
    _resource(
        "Encounter",
        "e1",
        status="finished",
        subject={"reference": "Patient/p1"},
        period={"start": "2024-05-01T09:00:00Z"},
        reasonCode=[{"text": "Mid back pain, cough"}],
    ),
    _resource(
        "Encounter",
        "e2",
        status="finished",
        subject={"reference": "Patient/p1"},
        period={"start": "2024-09-01"},
    ),
    _observation("o1", "e1", INTAKE, "night_pain", valueBoolean=True),
    _observation(
        "o2",
        "e1",
        INTAKE,
        "fever",
        valueCodeableConcept={"coding": [{"system": SNOMED, "code": "373067005"}]},
    ),
    _observation("o3", "e1", LOINC, "72514-3", valueInteger=6),
    _observation("o4", "e1", INTAKE, "pain_site", valueString="thoracic"),
    _observation("o5", "e1", INTAKE, "pain_duration_days", valueQuantity={"value": 21}),
    _observation(
        "o6",
        "e1",
        LOINC,
        "72166-2",
        valueCodeableConcept={"coding": [{"system": SNOMED, "code": "8517006"}]},
    ),
    _observation("o7", "e1", LOINC, "8867-4", valueQuantity={"value": 72}),
    _observation("o8", "e2", INTAKE, "back_pain", valueBoolean=False),
]

# e1 (2024-05-01, born 1980-08-15 -> 43): the chief complaint is the reason's text;
# night_pain valueBoolean true; fever answered SNOMED No -> FALSE; pain severity
# 72514-3 -> 6; pain_site "thoracic"; duration 21 days as a quantity; smoking at this
# encounter: former. o7 (heart rate 8867-4) is no intake field.
# e2 (2024-09-01 -> 44): only back_pain FALSE; e1's smoking status is e1's alone.
EXPECTED_FHIR = [
    intake(
        encounter_id=pid("e1"),
        patient_id=pid("p1"),
        encounter_date=date(2024, 5, 1),
        age_years=43,
        sex="F",
        smoking_status="former",
        chief_complaint="Mid back pain, cough",
        pain_site="thoracic",
        pain_duration_days=21,
        pain_score=6,
        night_pain=True,
        fever=False,
    ),
    intake(
        encounter_id=pid("e2"),
        patient_id=pid("p1"),
        encounter_date=date(2024, 9, 1),
        age_years=44,
        sex="F",
        back_pain=False,
    ),
]


@pytest.mark.parametrize("layout", ["ndjson", "bundle"])
def test_fhir_reason_and_observations_fill_the_intake_form(tmp_path: Path, layout: str):
    src = tmp_path / "fhir"
    src.mkdir()
    if layout == "ndjson":
        (src / "all.ndjson").write_text(
            "".join(json.dumps(r) + "\n" for r in FHIR_RESOURCES), encoding="utf-8"
        )
    else:
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in FHIR_RESOURCES],
        }
        (src / "p1.json").write_text(json.dumps(bundle), encoding="utf-8")
    out = tmp_path / "out"
    fhir.convert(src, out)
    assert rows(out / "intake.parquet") == EXPECTED_FHIR
