-- Rule (hedis_lbp exclusions): the dated events that exclude a patient's index
-- presentations from hedis_lbp when they fall on the index date or up to lookback_days
-- before it: a presentation (any, back pain or not) with a flag of
-- overuse.hedis_lbp.exclusion_flags TRUE ({{ exclusion_flag_days }} days); a code of an
-- exclusion value set (dim_overuse_exclusions, each with its lookback: trauma 90 days,
-- the rest 365) in a presentation's dx_codes or in the patient's diagnoses
-- (int_diagnoses_icd10cm). One row per (patient, date, lookback).
{{ config(materialized='table') }}
WITH exclusion_codes AS (
    SELECT v.code, v.is_prefix, x.lookback_days
    FROM {{ ref('dim_overuse_exclusions') }} AS x
    JOIN {{ source('staging', 'value_sets') }} AS v USING (value_set)
    WHERE v.code_system = 'ICD10CM'
),
split AS (
    SELECT patient_id, encounter_date, unnest(string_split(dx_codes, ';')) AS code
    FROM {{ source('staging', 'intake') }}
    WHERE dx_codes IS NOT NULL
      AND encounter_date <= (SELECT data_end_date FROM {{ ref('int_data_end') }})
),
coded AS (
    SELECT patient_id, encounter_date AS event_date, {{ normalize_code('code') }} AS icd10cm
    FROM split
    UNION ALL
    SELECT patient_id, diagnosis_date, icd10cm FROM {{ ref('int_diagnoses_icd10cm') }}
)
SELECT DISTINCT c.patient_id, c.event_date, x.lookback_days
FROM coded AS c
JOIN exclusion_codes AS x
    ON c.icd10cm = x.code OR (x.is_prefix AND starts_with(c.icd10cm, x.code))
UNION
SELECT f.patient_id, f.encounter_date, {{ exclusion_flag_days }}
FROM {{ source('features', 'presentation_flags') }} AS f
WHERE ({{ exclusion_flag_test }})
  AND f.encounter_date <= (SELECT data_end_date FROM {{ ref('int_data_end') }})
