-- Rule (target diagnoses, rule performance): a diagnosis (int_diagnoses_icd10cm: ICD-10-CM
-- or through the crosswalk) is a diagnosis of a target (cohorts.yml
-- rule_performance.targets) when its code is in one of the target's value sets; a
-- value-set code marked is_prefix matches every code starting with it. One row per
-- (target, patient, date).
{{ config(materialized='table') }}
WITH target_codes AS (
    SELECT t.target, v.code, v.is_prefix
    FROM {{ ref('dim_rule_targets') }} AS t
    JOIN {{ source('staging', 'value_sets') }} AS v USING (value_set)
    WHERE v.code_system = 'ICD10CM'
)
SELECT DISTINCT c.target, d.patient_id, d.diagnosis_date
FROM {{ ref('int_diagnoses_icd10cm') }} AS d
JOIN target_codes AS c
    ON d.icd10cm = c.code OR (c.is_prefix AND starts_with(d.icd10cm, c.code))
