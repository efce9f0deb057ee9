-- Rule (low_value_imaging population): index presentations aged {{ overuse_min_age }}-{{ overuse_max_age }} whose
-- episode's highest tier is {{ low_value_tier }}, counting only the episode's presentations
-- (int_episodes, the index included) dated 0..{{ overuse_window }} days after the index and
-- on or before the first spine imaging (days_to_overuse_outcome, when there is one): an
-- escalation on the imaging's day or before it removes the episode, one after it does
-- not. With the days to that imaging and the follow-up. The index always counts (day 0,
-- on or before any imaging), so only episodes whose index tier is {{ low_value_tier }} can qualify:
-- the others are not looked at.
{{ config(materialized='table') }}
WITH candidates AS (
    SELECT i.presentation_key, i.patient_id, i.index_date, i.age_years, i.followup_days,
        {{ days_to_overuse_outcome }} AS days_to_outcome
    FROM {{ ref('fct_index_presentations') }} AS i
    WHERE i.age_years BETWEEN {{ overuse_min_age }} AND {{ overuse_max_age }}
      AND i.index_tier = {{ low_value_tier }}
),
-- When the washout ({{ washout_days }} days) is at least {{ overuse_window }} days, no presentation dated within
-- {{ overuse_window }} days of an index starts a new episode and none dated on the index's day comes
-- before it (as in int_episode_max_tier): the episode's presentations in those days are
-- all the patient's back-pain presentations then (int_washout), joined by date without
-- placing every presentation in its episode first. Otherwise through int_episodes.
highest AS (
    SELECT c.presentation_key, min(w.tier_rank) AS tier_rank
    FROM candidates AS c
    JOIN {{ ref('int_washout') }} AS w
        ON w.patient_id = c.patient_id
        AND w.encounter_date BETWEEN c.index_date AND c.index_date + {{ overuse_window }}
    WHERE {{ washout_covers_overuse_window }}
      AND (c.days_to_outcome IS NULL OR w.encounter_date - c.index_date <= c.days_to_outcome)
    GROUP BY c.presentation_key
    UNION ALL
    SELECT c.presentation_key, min(e.tier_rank) AS tier_rank
    FROM candidates AS c
    JOIN {{ ref('int_episodes') }} AS e ON e.index_key = c.presentation_key
    WHERE NOT {{ washout_covers_overuse_window }}
      AND e.encounter_date - c.index_date BETWEEN 0 AND {{ overuse_window }}
      AND (c.days_to_outcome IS NULL OR e.encounter_date - c.index_date <= c.days_to_outcome)
    GROUP BY c.presentation_key
)
SELECT c.presentation_key, c.age_years, c.followup_days, c.days_to_outcome
FROM candidates AS c
JOIN highest AS h USING (presentation_key)
JOIN {{ ref('dim_tiers') }} AS t USING (tier_rank)
WHERE t.tier = {{ low_value_tier }}
