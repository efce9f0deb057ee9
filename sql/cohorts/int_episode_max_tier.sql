-- Rule (episode_max_tier): the highest tier (tier order of cohorts.yml, urgent first)
-- among the episode's presentations dated within {{ max_tier_days }} days of the index
-- (0 <= encounter_date - index_date <= {{ max_tier_days }}), the index included.
CREATE OR REPLACE TABLE cohorts.int_episode_max_tier AS
SELECT
    e.index_key AS presentation_key,
    arg_min(e.tier, t.tier_rank) AS episode_max_tier,
    count(*) AS n_presentations_in_window
FROM cohorts.int_episodes AS e
JOIN cohorts.dim_tiers AS t ON t.tier = e.tier
WHERE e.encounter_date - e.index_date <= {{ max_tier_days }}
GROUP BY e.index_key;
