-- Rule (care-gap trigger): within an episode, the first presentation (patient_seq order,
-- the index included) whose tier has a care-gap definition (cohorts.yml care_gaps) starts
-- the clock of that definition. One row per episode with a trigger: the episode's index
-- (index_key), the trigger's presentation_key, date and tier, and the definition it
-- starts (care_gap, its qualifying outcome_mask and window_days).
{{ config(materialized='table') }}
WITH indexes AS (
    SELECT patient_id, patient_seq, presentation_key AS index_key
    FROM {{ ref('int_washout') }}
    WHERE is_index
),
-- the presentations at a tier with a definition, each placed in its episode: the latest
-- index at or before it in patient_seq order (an ASOF join over these few, rather than
-- a window pass over every back-pain presentation); the first presentation of a
-- patient is an index, so each has one
candidates AS (
    SELECT
        x.index_key,
        w.patient_id,
        w.patient_seq,
        w.presentation_key,
        w.encounter_date,
        g.care_gap
    FROM {{ ref('int_washout') }} AS w
    JOIN {{ ref('dim_tiers') }} AS t ON t.tier_rank = w.tier_rank
    JOIN {{ ref('dim_care_gaps') }} AS g ON g.tier = t.tier
    ASOF JOIN indexes AS x ON x.patient_id = w.patient_id AND w.patient_seq >= x.patient_seq
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
