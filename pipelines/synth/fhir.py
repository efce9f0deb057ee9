"""The synthetic population as FHIR R4 Bulk Data NDJSON (`redflags generate --format fhir`).

Converts the canonical files the generator wrote into one NDJSON file per resource
type, the shape of a FHIR Bulk Data export, with DuckDB: Patient, Encounter (the
chief complaint as the text of its reasonCode), Condition (the visit's codes, and
the diagnoses without a visit), Observation (smoking status, LOINC 72166-2 with a
SNOMED answer, and the intake form's answers) and ServiceRequest (imaging and biopsy
orders, with their priority). So the FHIR adapter is tested and benchmarked on the
same population as the canonical path.

Each recorded intake field of a visit is an Observation of the encounter, coded
with the field's name in the intake form's code system; its value is valueBoolean,
valueInteger or valueString. Bulk Data allows several files of one type: the answers
of each value type are a file of their own (Observation.boolean.ndjson, ...), so no
resource carries an empty value element.
Logical ids are the canonical ids; the adapter replaces them by pseudonyms.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.sqltext import identifier, literal
from pipelines.sqltext import path as sql_path
from pipelines.synth.omop import (
    COMPLAINT,
    SMOKING_ANSWERS,
    SMOKING_QUESTION,
    case_sql,
    intake_fields,
    order_text_sql,
)

SYSTEMS = {
    "ICD10CM": "http://hl7.org/fhir/sid/icd-10-cm",
    "SNOMED": "http://snomed.info/sct",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "ICD10PCS": "http://www.cms.gov/Medicare/Coding/ICD10",
    "LOCAL": "urn:oid:2.16.840.1.113883.6.285",
    "LOINC": "http://loinc.org",
    "INTAKE": "urn:redflags:intake-field",
}
# The FHIR element of each contract type of an intake field.
VALUE_ELEMENTS = {"boolean": "valueBoolean", "integer": "valueInteger", "string": "valueString"}
# ServiceRequest.priority of each urgency (schemas/value_sets/urgency.csv reads it back).
PRIORITIES = {"routine": "routine", "urgent": "urgent", "emergency": "stat"}
GENDERS = {"M": "male", "F": "female", "X": "other", "U": "unknown"}


def _reference(kind: str, column: str) -> str:
    return f"{{'reference': {literal(kind + '/')} || {column}}}"


def _coding(system: str, code: str) -> str:
    return f"{{'coding': [{{'system': {system}, 'code': {code}}}]}}"


def write_fhir(canonical_dir: Path, out_dir: Path) -> dict[str, int]:
    """Write the NDJSON files of the canonical files in canonical_dir; resources per type."""
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        for table in ("intake", "referrals", "diagnoses"):
            con.execute(
                f"CREATE OR REPLACE VIEW c_{table} AS "
                f"SELECT * FROM read_parquet({sql_path(canonical_dir / f'{table}.parquet')})"
            )
        return {
            name: _write(con, select, out_dir / f"{name}.ndjson") for name, select in _resources()
        }
    finally:
        con.close()


def _resources() -> list[tuple[str, str]]:
    """(resource type, SELECT of its resources, one column each JSON element)."""
    subject = _reference("Patient", "patient_id")
    system = case_sql("code_system", SYSTEMS, "NULL")
    answer = case_sql("smoking_status", {k: v[0] for k, v in SMOKING_ANSWERS.items()}, "NULL")
    question = _coding(literal(SYSTEMS[SMOKING_QUESTION[0]]), literal(SMOKING_QUESTION[1]))
    return [
        (
            "Patient",
            f"""SELECT 'Patient' AS resourceType, patient_id AS id,
                {case_sql("any_value(sex)", GENDERS, "'unknown'")} AS gender,
                strftime(min(encounter_date - to_years(age_years)), '%Y-%m-%d') AS birthDate
            FROM c_intake GROUP BY patient_id ORDER BY patient_id""",
        ),
        (
            "Encounter",
            f"""SELECT 'Encounter' AS resourceType, encounter_id AS id, 'finished' AS status,
                {subject} AS subject,
                {{'start': strftime(encounter_date, '%Y-%m-%d')}} AS period,
                CASE WHEN {COMPLAINT} IS NOT NULL THEN [{{'text': {COMPLAINT}}}] END
                    AS reasonCode
            FROM c_intake ORDER BY encounter_id""",
        ),
        (
            "Condition",
            f"""SELECT 'Condition' AS resourceType, id,
                {_coding(literal(SYSTEMS["ICD10CM"]), "code")} AS code,
                {subject} AS subject, encounter, strftime(day, '%Y-%m-%d') AS onsetDateTime
            FROM (
                SELECT encounter_id || '-' || trim(code) AS id, patient_id, trim(code) AS code,
                       {_reference("Encounter", "encounter_id")} AS encounter,
                       encounter_date AS day
                FROM (SELECT *, unnest(string_split(dx_codes, ';')) AS code FROM c_intake
                      WHERE dx_codes IS NOT NULL)
                WHERE trim(code) <> ''
            )
            UNION ALL
            SELECT 'Condition', 'dx-' || row_number() OVER (ORDER BY patient_id, diagnosis_date,
                       code),
                {_coding(system, "code")}, {subject}, NULL,
                strftime(diagnosis_date, '%Y-%m-%d')
            FROM c_diagnoses""",
        ),
        (
            "Observation",
            f"""SELECT 'Observation' AS resourceType, 'smoking-' || encounter_id AS id,
                'final' AS status, {question} AS code, {subject} AS subject,
                {_reference("Encounter", "encounter_id")} AS encounter,
                strftime(encounter_date, '%Y-%m-%d') AS effectiveDateTime,
                {_coding(literal(SYSTEMS["SNOMED"]), answer)} AS valueCodeableConcept
            FROM c_intake WHERE smoking_status IS NOT NULL ORDER BY encounter_id""",
        ),
        (
            "ServiceRequest",
            f"""SELECT 'ServiceRequest' AS resourceType, referral_id AS id, 'active' AS status,
                'order' AS intent, {subject} AS subject,
                strftime(referral_date, '%Y-%m-%d') AS authoredOn,
                {{'coding': CASE WHEN code IS NOT NULL
                                 THEN [{{'system': {system}, 'code': code}}] ELSE [] END,
                  'text': CASE WHEN code IS NULL
                               THEN {order_text_sql("modality", "body_region")} END}} AS code,
                {case_sql("urgency", PRIORITIES, "NULL")} AS priority
            FROM c_referrals ORDER BY referral_id""",
        ),
        *_answers(subject),
    ]


def _answers(subject: str) -> list[tuple[str, str]]:
    """(file name, SELECT) of the intake form's Observations, one file per value type."""
    fields = {f: t for f, t in intake_fields().items() if f != COMPLAINT}
    files = []
    for kind, element in VALUE_ELEMENTS.items():
        selects = [
            f"""SELECT 'Observation' AS resourceType, encounter_id || '-' || {literal(f)} AS id,
                'final' AS status,
                {_coding(literal(SYSTEMS["INTAKE"]), literal(f))} AS code, {subject} AS subject,
                {_reference("Encounter", "encounter_id")} AS encounter,
                strftime(encounter_date, '%Y-%m-%d') AS effectiveDateTime,
                {identifier(f)} AS {element}
            FROM c_intake WHERE {identifier(f)} IS NOT NULL"""
            for f, t in fields.items()
            if t == kind
        ]
        if selects:
            files.append((f"Observation.{kind}", "\nUNION ALL\n".join(selects) + " ORDER BY id"))
    return files


def _write(con: duckdb.DuckDBPyConnection, select: str, path: Path) -> int:
    con.execute(f"COPY ({select}) TO {sql_path(path)} (FORMAT json)")
    return int(con.execute(f"SELECT count(*) FROM ({select})").fetchone()[0])
