-- Rule (hedis_lbp denominator): index presentations aged {{ overuse_min_age }}-{{ overuse_max_age }} at the index
-- with a code of the {{ hedis_lbp_value_set }} value set in the index's dx_codes or an
-- effective pain site among {{ hedis_pain_sites }}, without an exclusion event of the patient
-- (int_hedis_lbp_exclusions) dated 0..lookback_days before the index date. With the
-- days to the first spine imaging (days_to_overuse_outcome) and the follow-up.
{{ config(materialized='table') }}
WITH lbp_codes AS (
    SELECT code, is_prefix
    FROM {{ source('staging', 'value_sets') }}
    WHERE value_set = {{ hedis_lbp_value_set }} AND code_system = 'ICD10CM'
),
candidates AS (
    SELECT i.presentation_key, i.patient_id, i.index_date, i.age_years, i.pain_site,
        i.followup_days, {{ days_to_overuse_outcome }} AS days_to_outcome, s.dx_codes
    FROM {{ ref('fct_index_presentations') }} AS i
    JOIN {{ source('staging', 'intake') }} AS s ON s.encounter_id = i.encounter_id
    WHERE i.age_years BETWEEN {{ overuse_min_age }} AND {{ overuse_max_age }}
),
coded_lbp AS (
    SELECT DISTINCT c.presentation_key
    FROM (
        SELECT presentation_key, {{ normalize_code('code') }} AS icd10cm
        FROM (
            SELECT presentation_key, unnest(string_split(dx_codes, ';')) AS code
            FROM candidates
            WHERE dx_codes IS NOT NULL
        )
    ) AS c
    JOIN lbp_codes AS l
        ON c.icd10cm = l.code OR (l.is_prefix AND starts_with(c.icd10cm, l.code))
),
excluded AS (
    SELECT DISTINCT c.presentation_key
    FROM candidates AS c
    JOIN {{ ref('int_hedis_lbp_exclusions') }} AS x
        ON x.patient_id = c.patient_id
        AND x.event_date <= c.index_date
        AND c.index_date - x.event_date <= x.lookback_days
)
SELECT c.presentation_key, c.age_years, c.followup_days, c.days_to_outcome
FROM candidates AS c
WHERE (c.pain_site IN ({{ hedis_pain_sites }})
       OR c.presentation_key IN (SELECT presentation_key FROM coded_lbp))
  AND c.presentation_key NOT IN (SELECT presentation_key FROM excluded)
