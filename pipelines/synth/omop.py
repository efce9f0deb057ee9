"""The synthetic population as OMOP CDM v5.4 tables (`redflags generate --format omop`).

Converts the canonical files the generator wrote (intake, referrals, diagnoses) into
the CDM tables the OMOP adapter reads, with DuckDB: person, visit_occurrence,
condition_occurrence, procedure_occurrence, observation (smoking status and the
intake form's answers), note (the chief complaint) and a small concept table holding
every concept used. So the adapter is tested and benchmarked on the same population
as the canonical path.

The intake form is written as a site's EHR feeds a CDM: each recorded field of a
visit is one observation with the visit's id, the field's name as its source value
(a local code, concept 0), and the answer as the value (yes/no as the SNOMED Yes and
No concepts, numbers as value_as_number, text as value_as_string); the chief
complaint is a note of class LOINC 10154-3 ("Chief complaint Narrative - Reported").
What a CDM has no place for is not written: the urgency of an order.
No observation_period or death either:
the canonical population has no patients table, and a period would end follow-up.
Ids become integers (OMOP keys are surrogate integers); persons and visits keep the
canonical id as their source value.
Concept ids are local (2,000,000,000 and above, as the CDM reserves for site
concepts), except the gender concepts 8507 and 8532.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.contracts import load_contract
from pipelines.sources.mapping import INTAKE_FIELD
from pipelines.sqltext import identifier, literal
from pipelines.sqltext import path as sql_path
from pipelines.value_sets import value_set_names

LOCAL_CONCEPT_BASE = 2_000_000_000
EHR_TYPE_CONCEPT = 32817  # type concept "EHR": where a record came from
GENDER_CONCEPTS = {"M": 8507, "F": 8532}
# Canonical code systems as OMOP vocabulary_id values.
VOCABULARIES = {
    "ICD10CM": "ICD10CM",
    "SNOMED": "SNOMED",
    "CPT": "CPT4",
    "ICD10PCS": "ICD10PCS",
    "LOCAL": "HCPCS",
    "LOINC": "LOINC",
}
# The smoking-status question and one answer per status (the US Core value set).
SMOKING_QUESTION = ("LOINC", "72166-2", "Tobacco smoking status")
SMOKING_ANSWERS = {
    "current": ("449868002", "Current every day smoker"),
    "former": ("8517006", "Former smoker"),
    "never": ("266919005", "Never smoker"),
    "unknown": ("266927001", "Unknown if ever smoked"),
}
# The answers of a yes/no field, and the class of a chief-complaint note.
ANSWERS = {True: ("373066001", "Yes"), False: ("373067005", "No")}
COMPLAINT_NOTE = ("LOINC", "10154-3", "Chief complaint Narrative - Reported")
COMPLAINT = "chief_complaint"


def intake_fields() -> dict[str, str]:
    """The intake columns written as a record of their own (an observation, or a note
    for the complaint), with their contract type: those an intake_field value set
    reads back."""
    names = set(value_set_names())
    return {
        c.name: c.type for c in load_contract("intake").columns if INTAKE_FIELD + c.name in names
    }


# How an order without a code is written as text: its modality and body region in the
# words of OMOP concept names, which the adapter's keyword list reads back.
MODALITY_WORDS = {
    "xray": "Radiography",
    "ct": "Computed tomography",
    "mri": "Magnetic resonance imaging",
    "bone_scan": "Bone scan",
    "pet_ct": "Positron emission tomography",
    "needle": "Needle biopsy",
    "bronchoscopic": "Bronchoscopic biopsy",
    "surgical": "Open biopsy",
}
REGION_WORDS = {"spine": " of spine", "chest": " of chest", "other": " of pelvis"}


def case_sql(column: str, mapping: dict[str, str], default: str = "''") -> str:
    """SQL: `column` translated through `mapping` (values quoted), else `default`."""
    whens = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in mapping.items())
    return f"CASE {column} {whens} ELSE {default} END"


def order_text_sql(modality: str, region: str) -> str:
    """SQL: the text an order without a code is written as ("Radiography of chest")."""
    return f"{case_sql(modality, MODALITY_WORDS)} || {case_sql(region, REGION_WORDS)}"


def load_canonical(con: duckdb.DuckDBPyConnection, canonical_dir: Path) -> None:
    """Views c_intake, c_referrals, c_diagnoses over the generator's Parquet files."""
    for table in ("intake", "referrals", "diagnoses"):
        con.execute(
            f"CREATE OR REPLACE VIEW c_{table} AS "
            f"SELECT * FROM read_parquet({sql_path(canonical_dir / f'{table}.parquet')})"
        )
    # Ids as integers, in canonical order; birth date as late as every visit's age allows.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE c_person AS
        SELECT patient_id, row_number() OVER (ORDER BY patient_id) AS person_id,
               any_value(sex) AS sex,
               min(encounter_date - to_years(age_years))::DATE AS birth_date
        FROM c_intake GROUP BY patient_id"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE c_visit AS
        SELECT i.*, row_number() OVER (ORDER BY encounter_id) AS visit_id, p.person_id
        FROM c_intake i JOIN c_person p USING (patient_id)"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE c_dx AS
        SELECT visit_id, person_id, encounter_date, trim(code) AS code
        FROM (SELECT visit_id, person_id, encounter_date,
                     unnest(string_split(dx_codes, ';')) AS code
              FROM c_visit WHERE dx_codes IS NOT NULL)
        WHERE trim(code) <> ''"""
    )


def _concepts(con: duckdb.DuckDBPyConnection) -> None:
    """`g_concept`: one local concept per (vocabulary, code) the tables use."""
    vocab = case_sql("code_system", VOCABULARIES, "code_system")
    question = ", ".join(literal(v) for v in SMOKING_QUESTION)
    answers = " UNION ALL ".join(
        f"SELECT 'SNOMED', {literal(code)}, {literal(name)}"
        for code, name in (*SMOKING_ANSWERS.values(), *ANSWERS.values())
    )
    note_class = ", ".join(literal(v) for v in COMPLAINT_NOTE)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE g_concept AS
        WITH used(vocabulary_id, concept_code, concept_name) AS (
            SELECT DISTINCT 'ICD10CM', code, code FROM c_dx
            UNION SELECT DISTINCT {vocab}, code, code FROM c_diagnoses
            UNION SELECT DISTINCT {vocab}, code, code FROM c_referrals WHERE code IS NOT NULL
            UNION SELECT {question}
            UNION SELECT {note_class}
            UNION {answers}
        )
        SELECT {LOCAL_CONCEPT_BASE} + row_number() OVER (ORDER BY vocabulary_id, concept_code)
                   AS concept_id, *
        FROM (SELECT vocabulary_id, concept_code, any_value(concept_name) AS concept_name
              FROM used GROUP BY ALL)"""
    )


def _copy(con: duckdb.DuckDBPyConnection, select: str, path: Path) -> int:
    con.execute(f"COPY ({select}) TO {sql_path(path)} (FORMAT csv, HEADER)")
    return int(con.execute(f"SELECT count(*) FROM ({select})").fetchone()[0])


def write_omop(canonical_dir: Path, out_dir: Path) -> dict[str, int]:
    """Write the CDM tables of the canonical files in canonical_dir; rows per table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        load_canonical(con, canonical_dir)
        _concepts(con)
        return _write_tables(con, out_dir)
    finally:
        con.close()


def _write_tables(con: duckdb.DuckDBPyConnection, out_dir: Path) -> dict[str, int]:
    ehr = EHR_TYPE_CONCEPT
    gender = case_sql("sex", {k: str(v) for k, v in GENDER_CONCEPTS.items()}, "'0'")
    concept_of = (
        "(SELECT concept_id FROM g_concept g WHERE g.vocabulary_id = {v} AND g.concept_code = {c})"
    )
    vocab = case_sql("code_system", VOCABULARIES, "code_system")
    tables = {
        "concept": """SELECT concept_id, concept_name,
                CASE WHEN vocabulary_id IN ('ICD10CM', 'SNOMED') THEN 'Condition'
                     WHEN vocabulary_id = 'LOINC' THEN 'Observation' ELSE 'Procedure' END
                    AS domain_id,
                vocabulary_id, vocabulary_id AS concept_class_id,
                CASE WHEN vocabulary_id IN ('ICD10CM', 'ICD10PCS') THEN NULL ELSE 'S' END
                    AS standard_concept,
                concept_code, DATE '1970-01-01' AS valid_start_date,
                DATE '2099-12-31' AS valid_end_date, NULL AS invalid_reason
            FROM g_concept
            UNION ALL SELECT 8507, 'MALE', 'Gender', 'Gender', 'Gender', 'S', 'M',
                DATE '1970-01-01', DATE '2099-12-31', NULL
            UNION ALL SELECT 8532, 'FEMALE', 'Gender', 'Gender', 'Gender', 'S', 'F',
                DATE '1970-01-01', DATE '2099-12-31', NULL
            ORDER BY concept_id""",
        "person": f"""SELECT person_id, {gender}::INTEGER AS gender_concept_id,
                year(birth_date) AS year_of_birth, month(birth_date) AS month_of_birth,
                day(birth_date) AS day_of_birth, NULL AS birth_datetime,
                0 AS race_concept_id, 0 AS ethnicity_concept_id, NULL AS location_id,
                NULL AS provider_id, NULL AS care_site_id, patient_id AS person_source_value,
                sex AS gender_source_value, 0 AS gender_source_concept_id
            FROM c_person ORDER BY person_id""",
        "visit_occurrence": f"""SELECT visit_id AS visit_occurrence_id, person_id,
                0 AS visit_concept_id, encounter_date AS visit_start_date,
                encounter_date AS visit_end_date, {ehr} AS visit_type_concept_id,
                encounter_id AS visit_source_value
            FROM c_visit ORDER BY visit_id""",
        "condition_occurrence": f"""SELECT row_number() OVER (ORDER BY visit_id, code, src)
                    AS condition_occurrence_id,
                person_id, 0 AS condition_concept_id, day AS condition_start_date,
                {ehr} AS condition_type_concept_id, visit_id AS visit_occurrence_id,
                code AS condition_source_value,
                {concept_of.format(v="vocabulary", c="code")} AS condition_source_concept_id
            FROM (
                SELECT 0 AS src, visit_id, person_id, encounter_date AS day, code,
                       'ICD10CM' AS vocabulary FROM c_dx
                UNION ALL
                SELECT 1, NULL, p.person_id, d.diagnosis_date, d.code,
                       {case_sql("d.code_system", VOCABULARIES, "d.code_system")}
                FROM c_diagnoses d JOIN c_person p USING (patient_id)
            )""",
        "procedure_occurrence": f"""SELECT row_number() OVER (ORDER BY referral_id)
                    AS procedure_occurrence_id,
                p.person_id,
                CASE WHEN r.code IS NOT NULL AND r.code_system <> 'ICD10PCS'
                     THEN {concept_of.format(v=vocab, c="r.code")} ELSE 0 END
                    AS procedure_concept_id,
                r.referral_date AS procedure_date, {ehr} AS procedure_type_concept_id,
                coalesce(r.code, {order_text_sql("r.modality", "r.body_region")})
                    AS procedure_source_value,
                CASE WHEN r.code_system = 'ICD10PCS'
                     THEN {concept_of.format(v="'ICD10PCS'", c="r.code")} ELSE 0 END
                    AS procedure_source_concept_id
            FROM c_referrals r JOIN c_person p USING (patient_id)""",
        "observation": f"""SELECT row_number() OVER (ORDER BY visit_id, kind) AS observation_id,
                person_id, observation_concept_id, encounter_date AS observation_date,
                {ehr} AS observation_type_concept_id, value_as_number, value_as_string,
                value_as_concept_id, visit_id AS visit_occurrence_id, observation_source_value,
                value_source_value
            FROM ({_observations_sql(concept_of)})""",
        "note": f"""SELECT visit_id AS note_id, person_id, encounter_date AS note_date,
                {ehr} AS note_type_concept_id,
                {concept_of.format(v=literal(COMPLAINT_NOTE[0]), c=literal(COMPLAINT_NOTE[1]))}
                    AS note_class_concept_id,
                'Chief complaint' AS note_title, {COMPLAINT} AS note_text,
                0 AS encoding_concept_id, 0 AS language_concept_id,
                visit_id AS visit_occurrence_id
            FROM c_visit WHERE {COMPLAINT} IS NOT NULL ORDER BY visit_id""",
    }
    return {name: _copy(con, select, out_dir / f"{name}.csv") for name, select in tables.items()}


def _observations_sql(concept_of: str) -> str:
    """SQL: the observation rows of every visit: its smoking status (kind 0), then one
    row per recorded intake field (kind 1, 2, ... in contract order).

    `concept_of` is the concept-id lookup of _write_tables ({v} vocabulary, {c} code).
    """
    status = case_sql("smoking_status", {k: v[0] for k, v in SMOKING_ANSWERS.items()})
    smoking_question = concept_of.format(
        v=literal(SMOKING_QUESTION[0]), c=literal(SMOKING_QUESTION[1])
    )
    parts = [
        f"""SELECT visit_id, 0 AS kind, person_id, encounter_date,
            {smoking_question} AS observation_concept_id,
            {concept_of.format(v="'SNOMED'", c=status)} AS value_as_concept_id,
            NULL::DOUBLE AS value_as_number, NULL AS value_as_string,
            NULL AS observation_source_value, smoking_status AS value_source_value
        FROM c_visit WHERE smoking_status IS NOT NULL"""
    ]
    fields = {f: t for f, t in intake_fields().items() if f != COMPLAINT}
    for kind, (field, kind_type) in enumerate(fields.items(), start=1):
        column = identifier(field)
        yes, no = (concept_of.format(v="'SNOMED'", c=literal(ANSWERS[b][0])) for b in (True, False))
        concept = f"CASE WHEN {column} THEN {yes} ELSE {no} END" if kind_type == "boolean" else "0"
        number = f"{column}::DOUBLE" if kind_type == "integer" else "NULL::DOUBLE"
        text = f"{column}::VARCHAR" if kind_type == "string" else "NULL"
        parts.append(
            f"""SELECT visit_id, {kind}, person_id, encounter_date, 0, {concept}, {number},
                {text}, {literal(field)}, NULL
            FROM c_visit WHERE {column} IS NOT NULL"""
        )
    return "\nUNION ALL\n".join(parts)
