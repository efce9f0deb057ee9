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
    SELECT i.presentation_key, i.encounter_id, i.patient_id, i.index_date, i.age_years,
        coalesce(i.pain_site IN ({{ hedis_pain_sites }}), FALSE) AS lbp_site,
        i.followup_days, {{ days_to_overuse_outcome }} AS days_to_outcome
    FROM {{ ref('fct_index_presentations') }} AS i
    WHERE i.age_years BETWEEN {{ overuse_min_age }} AND {{ overuse_max_age }}
),
-- the codes are looked up only for candidates that the pain site does not already
-- take in, and only in intake rows with codes: the join to staging.intake is then
-- over a few rows, not every index presentation
coded_lbp AS (
    SELECT DISTINCT c.presentation_key
    FROM (
        SELECT presentation_key, {{ normalize_code('code') }} AS icd10cm
        FROM (
            SELECT c.presentation_key, unnest(string_split(s.dx_codes, ';')) AS code
            FROM candidates AS c
            JOIN {{ source('staging', 'intake') }} AS s ON s.encounter_id = c.encounter_id
            WHERE NOT c.lbp_site AND s.dx_codes IS NOT NULL
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
WHERE (c.lbp_site
       OR c.presentation_key IN (SELECT presentation_key FROM coded_lbp))
  AND c.presentation_key NOT IN (SELECT presentation_key FROM excluded)
