-- Rule (strata): each index presentation belongs to one stratum of every stratum type:
-- all, index_tier, episode_max_tier, age_band, sex, pain_site, smoking_status and
-- pattern (int_red_flag_patterns); and to one `flag` stratum per red flag that is TRUE.
-- Except for flag, the strata of a type partition the index presentations.
-- Rule (summary counts, compressed): for every stratum, the number of index
-- presentations per follow-up capped at the longest window ({{ max_window }} days; follow-up
-- above it is eligible for every window): the rows with outcome NULL, which give every
-- window's n_eligible, n_censored and n_died (they do not depend on the outcome;
-- is_died: follow-up ended at death before the longest window, so W's n_died counts the
-- rows with is_died and capped follow-up under W). And for every
-- stratum and outcome, the number of index presentations per (capped follow-up, days to
-- event) among those whose first event of the outcome is within the longest window: an
-- event after it counts for no window, so a presentation without an event within it is
-- in the denominators alone. cohort_summary reads every window's counts and medians here.
-- The partitioning stratum types are grouping sets of one pass; the pattern and flag
-- strata are counted per red_flag_mask in the same pass, then named. The event rows
-- are one SELECT per outcome, each keeping the rows with an event within the longest
-- window: an UNPIVOT would make a row per outcome of every index presentation first
-- and drop most of them after (at 10M presentations, 29 million rows for 5 million).
{{ config(materialized='table') }}
WITH per_index AS (
    SELECT
        index_tier,
        episode_max_tier,
        age_band,
        sex,
        pain_site,
        smoking_status,
        red_flag_mask,
        least(followup_days, {{ max_window }}) AS followup_days_capped,
        followup_end_reason = 'death' AND followup_days < {{ max_window }} AS is_died,
        {{ days_to_outcome_as_outcome }}
    FROM {{ ref('fct_index_presentations') }}
),
counted AS (
    SELECT * EXCLUDE ({{ outcome_names }}), NULL AS outcome, NULL AS days_to_event
    FROM per_index
    UNION ALL BY NAME
    {{ outcome_event_rows }}
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
            WHEN grouping(red_flag_mask) = 0 THEN 'pattern'
            ELSE 'all'
        END AS stratum_type,
        CASE
            WHEN grouping(index_tier) = 0 THEN index_tier
            WHEN grouping(episode_max_tier) = 0 THEN episode_max_tier
            WHEN grouping(age_band) = 0 THEN age_band
            WHEN grouping(sex) = 0 THEN sex
            WHEN grouping(pain_site) = 0 THEN pain_site
            WHEN grouping(smoking_status) = 0 THEN smoking_status
            WHEN grouping(red_flag_mask) = 0 THEN NULL
            ELSE 'all'
        END AS stratum_value,
        red_flag_mask,
        outcome,
        followup_days_capped,
        is_died,
        days_to_event,
        count(*) AS n_index
    FROM counted
    GROUP BY GROUPING SETS (
        (outcome, followup_days_capped, is_died, days_to_event),
        (index_tier, outcome, followup_days_capped, is_died, days_to_event),
        (episode_max_tier, outcome, followup_days_capped, is_died, days_to_event),
        (age_band, outcome, followup_days_capped, is_died, days_to_event),
        (sex, outcome, followup_days_capped, is_died, days_to_event),
        (pain_site, outcome, followup_days_capped, is_died, days_to_event),
        (smoking_status, outcome, followup_days_capped, is_died, days_to_event),
        (red_flag_mask, outcome, followup_days_capped, is_died, days_to_event)
    )
),
per_mask AS (
    SELECT p.pattern, p.true_flags, c.outcome, c.followup_days_capped, c.is_died, c.days_to_event,
        c.n_index
    FROM partitions AS c
    JOIN {{ ref('int_red_flag_patterns') }} AS p USING (red_flag_mask)
    WHERE c.stratum_type = 'pattern'
),
flags AS (
    SELECT
        'flag' AS stratum_type,
        flag AS stratum_value,
        outcome,
        followup_days_capped,
        is_died,
        days_to_event,
        CAST(sum(n_index) AS BIGINT) AS n_index
    FROM (
        SELECT unnest(true_flags) AS flag, outcome, followup_days_capped, is_died, days_to_event,
            n_index
        FROM per_mask
    )
    GROUP BY ALL
)
SELECT stratum_type, stratum_value, outcome, followup_days_capped, is_died, days_to_event, n_index
FROM partitions
WHERE stratum_type <> 'pattern'
UNION ALL
SELECT 'pattern', pattern, outcome, followup_days_capped, is_died, days_to_event, n_index
FROM per_mask
UNION ALL
SELECT * FROM flags
