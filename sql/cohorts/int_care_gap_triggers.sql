-- Rule (care-gap trigger): within an episode, the first presentation (patient_seq order,
-- the index included) whose tier has a care-gap definition (cohorts.yml care_gaps) starts
-- the clock of that definition. One row per episode with a trigger: the episode's index
-- (index_key), the trigger's presentation_key, date and tier, and the definition it
-- starts (care_gap, its qualifying outcome_mask and window_days).
{{ config(materialized='table') }}
WITH candidates AS (
    SELECT
        e.index_key,
        e.patient_id,
        e.patient_seq,
        e.presentation_key,
        e.encounter_date,
        g.care_gap
    FROM {{ ref('int_episodes') }} AS e
    JOIN {{ ref('dim_tiers') }} AS t ON t.tier_rank = e.tier_rank
    JOIN {{ ref('dim_care_gaps') }} AS g ON g.tier = t.tier
),
firsts AS (
    SELECT
        index_key,
        any_value(patient_id) AS patient_id,
        arg_min(presentation_key, patient_seq) AS trigger_key,
        arg_min(encounter_date, patient_seq) AS trigger_date,
        arg_min(care_gap, patient_seq) AS care_gap
    FROM candidates
    GROUP BY index_key
)
SELECT f.*, g.tier AS trigger_tier, g.expected_outcomes, g.outcome_mask, g.window_days, g.gap_rank
FROM firsts AS f
JOIN {{ ref('dim_care_gaps') }} AS g USING (care_gap)
