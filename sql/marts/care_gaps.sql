-- Mart care_gaps (cohorts.yml care_gaps): per episode, the first presentation at a tier
-- with a care-gap definition (int_care_gap_triggers: emergency, urgent or high) and no
-- qualifying referral (emergency and urgent: spine imaging; high: spine or chest
-- imaging) 0..window_days days after it (1, 7, 14). Listed once the window has passed
-- (trigger date + window_days <= end of follow-up of the index), with days_to_imaging
-- (the first qualifying referral on or after the trigger, later than the window; NULL
-- if none yet), days_index_to_trigger and days_since_trigger at the data end.
-- Storage, not content: the ids are stored zstd, which DuckDB writes in less time than
-- its own choice (as for index_presentations); users see the same VARCHAR columns.
{{ config(compression={'zstd': ['encounter_id', 'patient_id', 'trigger_encounter_id']}) }}
WITH qualifying AS (
    SELECT
        g.index_key,
        min(r.referral_date) - any_value(g.trigger_date) AS days_to_imaging
    FROM {{ ref('int_care_gap_triggers') }} AS g
    JOIN {{ ref('int_referral_outcomes') }} AS r
        ON r.patient_id = g.patient_id
        AND r.referral_date >= g.trigger_date
        AND r.outcome_mask & g.outcome_mask <> 0
    GROUP BY g.index_key
)
SELECT
    g.care_gap,
    i.encounter_id,
    i.patient_id,
    i.index_date,
    i.index_tier,
    i.episode_max_tier,
    f.encounter_id AS trigger_encounter_id,
    g.trigger_date,
    g.trigger_tier,
    g.trigger_date - i.index_date AS days_index_to_trigger,
    g.expected_outcomes,
    g.window_days,
    q.days_to_imaging,
    d.data_end_date - g.trigger_date AS days_since_trigger
FROM {{ ref('int_care_gap_triggers') }} AS g
JOIN {{ ref('fct_index_presentations') }} AS i ON i.presentation_key = g.index_key
JOIN {{ source('features', 'presentation_flags') }} AS f ON f.rowid = g.trigger_key
CROSS JOIN {{ ref('int_data_end') }} AS d
LEFT JOIN qualifying AS q ON q.index_key = g.index_key
WHERE g.trigger_date - i.index_date + g.window_days <= i.followup_days
  AND (q.days_to_imaging IS NULL OR q.days_to_imaging > g.window_days)
ORDER BY g.gap_rank, g.trigger_date, i.encounter_id
