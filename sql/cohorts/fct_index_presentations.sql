-- Rule (index presentation facts): one row per index presentation (a new back-pain
-- episode) with its strata attributes, index and episode tiers, score, completeness,
-- every red flag, days_to_<outcome> for each outcome (the first event on or after the
-- index, NULL if none; fct_index_outcomes), followup_days (end of follow-up - index
-- date) and followup_end_reason (int_followup). The one table every count and mart reads for the index presentations,
-- so that none of them joins again on encounter_id.
-- Kept in the warehouse and published as the index_presentations mart (renamed, not
-- copied): the wide table is written once, on disk, not also held in memory. Two
-- working columns follow the mart's own: red_flag_mask (the pattern and flag strata
-- group on it) and presentation_key (the marts join on it); publishing drops them.
-- Storage, not content: the ids are stored zstd and the red flags roaring, which DuckDB
-- compresses in less time than its own choice (dict_fsst, bitpacking) into as many
-- blocks or fewer; users see the same VARCHAR and BOOLEAN columns.
{{ config(
    materialized='table',
    location='warehouse',
    publish_as='index_presentations',
    working_columns=['red_flag_mask', 'presentation_key'],
    compression={'zstd': ['encounter_id', 'patient_id'], 'roaring': red_flags},
) }}
SELECT
    f.encounter_id,
    f.patient_id,
    f.index_date,
    f.age_years,
    f.age_band,
    f.sex,
    f.pain_site,
    f.smoking_status,
    f.index_tier,
    f.episode_max_tier,
    f.score,
    f.completeness,
    {{ red_flag_columns_f }},
    {{ days_to_outcome_columns }},
    f.followup_days,
    f.followup_end_reason,
    f.red_flag_mask,
    f.presentation_key
FROM {{ ref('int_followup') }} AS f
LEFT JOIN {{ ref('fct_index_outcomes') }} AS d ON d.presentation_key = f.presentation_key
