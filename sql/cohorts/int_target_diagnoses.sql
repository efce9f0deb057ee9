-- Rule (target diagnoses, rule performance): a diagnosis of staging.diagnoses dated on or
-- before the data end is a diagnosis of a target (cohorts.yml rule_performance.targets)
-- when its ICD-10-CM code is in one of the target's value sets: its own code when coded
-- in ICD-10-CM, else the code of the crosswalk value set ({{ crosswalk_prefix }}<code>) that
-- lists its (code, code_system), such as SNOMED 93880001 -> C34.90. Codes compare
-- normalised; a value-set code marked is_prefix matches every code starting with it.
-- One row per (target, patient, date).
{{ config(materialized='table') }}
WITH diagnoses AS (
    SELECT patient_id, diagnosis_date, {{ normalize_code('code') }} AS code_norm, code_system
    FROM {{ source('staging', 'diagnoses') }}
    WHERE diagnosis_date <= (SELECT data_end_date FROM {{ ref('int_data_end') }})
),
crosswalk AS (
    SELECT
        code,
        code_system,
        {{ normalize_code('value_set[' ~ crosswalk_code_start ~ ':]') }} AS icd10cm
    FROM {{ source('staging', 'value_sets') }}
    WHERE starts_with(value_set, {{ crosswalk_prefix }}) AND NOT is_prefix
),
as_icd10cm AS (
    SELECT patient_id, diagnosis_date, code_norm AS icd10cm
    FROM diagnoses
    WHERE code_system = 'ICD10CM'
    UNION ALL
    SELECT d.patient_id, d.diagnosis_date, c.icd10cm
    FROM diagnoses AS d
    JOIN crosswalk AS c ON c.code = d.code_norm AND c.code_system = d.code_system
    WHERE d.code_system <> 'ICD10CM'
),
target_codes AS (
    SELECT t.target, v.code, v.is_prefix
    FROM {{ ref('dim_rule_targets') }} AS t
    JOIN {{ source('staging', 'value_sets') }} AS v USING (value_set)
    WHERE v.code_system = 'ICD10CM'
)
SELECT DISTINCT c.target, d.patient_id, d.diagnosis_date
FROM as_icd10cm AS d
JOIN target_codes AS c
    ON d.icd10cm = c.code OR (c.is_prefix AND starts_with(d.icd10cm, c.code))
