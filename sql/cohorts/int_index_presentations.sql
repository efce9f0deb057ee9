-- Rule (index presentations): the candidates of the index event that pass the washout,
-- with index_tier (the tier at the index), episode_max_tier, sex and smoking status
-- from staging.intake (NULL smoking status is unknown), every red flag, and the age
-- band (bands of cohorts.yml, one row per year of age in dim_age_band_years; an age
-- outside every band gets the `other` label).
-- red_flag_mask has the bit flag_bit (cohorts.dim_red_flags) of each red flag that is
-- TRUE: the pattern and flag strata group on it (int_red_flag_patterns names it).
-- A view: the index_presentations mart writes it out with the follow-up and outcomes.
{{ config(materialized='view') }}
SELECT
    w.presentation_key,
    f.encounter_id,
    f.patient_id,
    f.encounter_date AS index_date,
    f.age_years,
    coalesce(b.age_band, {{ age_band_other }}) AS age_band,
    i.sex,
    f.pain_site,
    coalesce(i.smoking_status, 'unknown') AS smoking_status,
    f.tier AS index_tier,
    m.episode_max_tier,
    f.score,
    f.completeness,
    {{ red_flag_columns_f }},
    {{ red_flag_mask_f }} AS red_flag_mask
FROM {{ ref('int_washout') }} AS w
JOIN {{ source('features', 'presentation_flags') }} AS f ON f.rowid = w.presentation_key
JOIN {{ source('staging', 'intake') }} AS i ON i.encounter_id = f.encounter_id
LEFT JOIN {{ ref('int_episode_max_tier') }} AS m ON m.presentation_key = w.presentation_key
LEFT JOIN {{ ref('dim_age_band_years') }} AS b ON b.age_years = f.age_years
WHERE w.is_index
