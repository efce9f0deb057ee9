-- Rule (diagnoses as ICD-10-CM): every diagnosis of staging.diagnoses dated on or before
-- the data end, read as ICD-10-CM: its own code when coded in ICD-10-CM, else the code of
-- the crosswalk value set ({{ crosswalk_prefix }}<code>) that lists its (code, code_system),
-- such as SNOMED 93880001 -> C34.90; a code in no crosswalk entry is left out. Codes are
-- normalised (upper case, no dots or spaces) as the value sets store them.
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
)
SELECT patient_id, diagnosis_date, code_norm AS icd10cm
FROM diagnoses
WHERE code_system = 'ICD10CM'
UNION ALL
SELECT d.patient_id, d.diagnosis_date, c.icd10cm
FROM diagnoses AS d
JOIN crosswalk AS c ON c.code = d.code_norm AND c.code_system = d.code_system
WHERE d.code_system <> 'ICD10CM'
