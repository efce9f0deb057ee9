-- Rule (episode_max_tier): the highest tier (tier order of the rules, emergency first)
-- among the episode's presentations dated within {{ max_tier_days }} days of the index
-- (0 <= encounter_date - index_date <= {{ max_tier_days }}), the index included.
-- When the washout ({{ washout_days }} days) is at least {{ max_tier_days }} days, no
-- presentation dated within {{ max_tier_days }} days of an index starts a new episode (its
-- previous presentation is at most {{ max_tier_days }} days before it), and none dated on the
-- index's day comes before it: the episode's presentations in those days are all the
-- patient's, which int_washout ranked in its pass (tier_rank_ahead). Otherwise each
-- presentation is placed in its episode first (int_episodes, a second pass).
{{ config(materialized='table') }}
WITH ranks AS (
    SELECT presentation_key, tier_rank_ahead AS tier_rank
    FROM {{ ref('int_washout') }}
    WHERE is_index AND {{ washout_covers_max_tier_days }}
    UNION ALL
    SELECT e.index_key, min(e.tier_rank)
    FROM {{ ref('int_episodes') }} AS e
    WHERE NOT {{ washout_covers_max_tier_days }}
      AND e.encounter_date - e.index_date <= {{ max_tier_days }}
    GROUP BY e.index_key
)
SELECT r.presentation_key, t.tier AS episode_max_tier
FROM ranks AS r
JOIN {{ ref('dim_tiers') }} AS t USING (tier_rank)
