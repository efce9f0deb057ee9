-- Rule (summary counts, compressed): for every stratum, the number of index
-- presentations per follow-up capped at the longest window ({{ max_window }} days; follow-up
-- above it is eligible for every window): the rows with outcome NULL, which give every
-- window's n_eligible and n_censored (they do not depend on the outcome). And for every
-- stratum and outcome, the number of index presentations per (capped follow-up, days to
-- event) among those whose first event of the outcome is within the longest window: an
-- event after it counts for no window, so a presentation without an event within it is
-- in the denominators alone. cohort_summary reads every window's counts and medians here.
-- The partitioning stratum types are grouping sets of one pass; flags are unnested.
CREATE OR REPLACE TABLE cohorts.fct_stratum_outcome_days AS
WITH per_index AS (
    SELECT s.*, least(f.followup_days, {{ max_window }}) AS followup_days_capped
    FROM cohorts.int_index_strata AS s
    JOIN cohorts.int_followup AS f USING (encounter_id)
),
counted AS (
    SELECT *, NULL AS outcome, NULL AS days_to_event
    FROM per_index
    UNION ALL BY NAME
    SELECT i.*, e.outcome, e.days_to_event
    FROM per_index AS i
    JOIN cohorts.fct_index_outcomes AS e USING (encounter_id)
    WHERE e.days_to_event <= {{ max_window }}
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
        days_to_event,
        count(*) AS n_index
    FROM counted
    GROUP BY GROUPING SETS (
        (outcome, followup_days_capped, days_to_event),
        (index_tier, outcome, followup_days_capped, days_to_event),
        (episode_max_tier, outcome, followup_days_capped, days_to_event),
        (age_band, outcome, followup_days_capped, days_to_event),
        (sex, outcome, followup_days_capped, days_to_event),
        (pain_site, outcome, followup_days_capped, days_to_event),
        (smoking_status, outcome, followup_days_capped, days_to_event),
        (pattern, outcome, followup_days_capped, days_to_event)
    )
),
flags AS (
    SELECT
        'flag' AS stratum_type,
        flag AS stratum_value,
        outcome,
        followup_days_capped,
        days_to_event,
        count(*) AS n_index
    FROM (
        SELECT unnest(true_flags) AS flag, outcome, followup_days_capped, days_to_event
        FROM counted
    )
    GROUP BY ALL
)
SELECT * FROM partitions
UNION ALL
SELECT * FROM flags;
