-- Rule (referral modality and region): a referral's modality and body region are the
-- given values when not NULL, else derived from its code through the modality_* and
-- region_* value sets of schemas/value_sets/procedures.csv (staging.value_sets).
-- Codes are compared normalised (upper case, no dots or spaces); a value-set code
-- marked is_prefix matches every code that starts with it. Referrals after the data
-- end are dropped. The derivation depends on (code, code_system) alone, so it is
-- worked out once per distinct pair (a few hundred) and joined back to the referrals.
-- A view: int_referral_outcomes, its one reader, keeps what it needs.
{{ config(materialized='view') }}
WITH coded AS (
    SELECT DISTINCT
        code,
        code_system,
        {{ normalize_code('code') }} AS code_norm
    FROM {{ source('staging', 'referrals') }}
    WHERE code IS NOT NULL
),
procedure_sets AS (
    SELECT value_set, code, code_system, is_prefix
    FROM {{ source('staging', 'value_sets') }}
    WHERE starts_with(value_set, 'modality_') OR starts_with(value_set, 'region_')
),
matched AS (
    SELECT c.code, c.code_system, s.value_set
    FROM coded AS c
    JOIN procedure_sets AS s ON s.code = c.code_norm AND NOT s.is_prefix
    WHERE c.code_system IS NULL OR c.code_system = s.code_system
    UNION ALL
    SELECT c.code, c.code_system, s.value_set
    FROM coded AS c
    JOIN procedure_sets AS s ON s.is_prefix AND starts_with(c.code_norm, s.code)
    WHERE c.code_system IS NULL OR c.code_system = s.code_system
),
derived AS (
    SELECT
        code,
        code_system,
        min(value_set) FILTER (WHERE starts_with(value_set, 'modality_'))[10:] AS modality,
        min(value_set) FILTER (WHERE starts_with(value_set, 'region_'))[8:] AS body_region
    FROM matched
    GROUP BY code, code_system
)
SELECT
    r.referral_id,
    r.patient_id,
    r.referral_date,
    r.referral_type,
    coalesce(r.modality, d.modality) AS modality,
    coalesce(r.body_region, d.body_region) AS body_region,
    r.modality IS NULL AND d.modality IS NOT NULL AS is_modality_derived,
    r.body_region IS NULL AND d.body_region IS NOT NULL AS is_body_region_derived
FROM {{ source('staging', 'referrals') }} AS r
LEFT JOIN derived AS d
    ON d.code = r.code AND d.code_system IS NOT DISTINCT FROM r.code_system
WHERE r.referral_date <= (SELECT data_end_date FROM {{ ref('int_data_end') }})
