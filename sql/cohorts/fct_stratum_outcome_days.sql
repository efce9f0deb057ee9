-- Rule (summary counts, compressed): for every stratum and outcome, the number of index
-- presentations per (follow-up, days to event), both capped at the longest window
-- ({{ max_window }} days): follow-up above it is eligible for every window, an event after it
-- counts for none. cohort_summary reads every window's counts and medians from here.
-- The partitioning stratum types are grouping sets of one pass; flags are unnested.
CREATE OR REPLACE TABLE cohorts.fct_stratum_outcome_days AS
WITH per_index AS MATERIALIZED (
    SELECT
        s.*,
        o.outcome,
        least(f.followup_days, {{ max_window }}) AS followup_days_capped,
        CASE WHEN e.days_to_event <= {{ max_window }} THEN e.days_to_event END
            AS days_to_event_capped
    FROM cohorts.int_index_strata AS s
    JOIN cohorts.int_followup AS f USING (encounter_id)
    CROSS JOIN cohorts.dim_outcomes AS o
    LEFT JOIN cohorts.fct_index_outcomes AS e
        ON e.encounter_id = s.encounter_id AND e.outcome = o.outcome
),
partitions AS (
    SELECT
        CASE
            WHEN grouping(index_tier) = 0 THEN 'index_tier'
            WHEN grouping(episode_max_tier) = 0 THEN 'episode_max_tier'
            WHEN grouping(age_band) = 0 THEN 'age_band'
            WHEN grouping(sex) = 0 THEN 'sex'
            WHEN grouping(pain_site) = 0 THEN 'pain_site'
            WHEN grouping(smoking_status) = 0 THEN 'smoking_status'
            WHEN grouping(pattern) = 0 THEN 'pattern'
            ELSE 'all'
        END AS stratum_type,
        CASE
            WHEN grouping(index_tier) = 0 THEN index_tier
            WHEN grouping(episode_max_tier) = 0 THEN episode_max_tier
            WHEN grouping(age_band) = 0 THEN age_band
            WHEN grouping(sex) = 0 THEN sex
            WHEN grouping(pain_site) = 0 THEN pain_site
            WHEN grouping(smoking_status) = 0 THEN smoking_status
            WHEN grouping(pattern) = 0 THEN pattern
            ELSE 'all'
        END AS stratum_value,
        outcome,
        followup_days_capped,
        days_to_event_capped,
        count(*) AS n_index
    FROM per_index
    GROUP BY GROUPING SETS (
        (outcome, followup_days_capped, days_to_event_capped),
        (index_tier, outcome, followup_days_capped, days_to_event_capped),
        (episode_max_tier, outcome, followup_days_capped, days_to_event_capped),
        (age_band, outcome, followup_days_capped, days_to_event_capped),
        (sex, outcome, followup_days_capped, days_to_event_capped),
        (pain_site, outcome, followup_days_capped, days_to_event_capped),
        (smoking_status, outcome, followup_days_capped, days_to_event_capped),
        (pattern, outcome, followup_days_capped, days_to_event_capped)
    )
),
flags AS (
    SELECT
        'flag' AS stratum_type,
        flag AS stratum_value,
        outcome,
        followup_days_capped,
        days_to_event_capped,
        count(*) AS n_index
    FROM (
        SELECT unnest(true_flags) AS flag, outcome, followup_days_capped, days_to_event_capped
        FROM per_index
    )
    GROUP BY ALL
)
SELECT * FROM partitions
UNION ALL
SELECT * FROM flags;
