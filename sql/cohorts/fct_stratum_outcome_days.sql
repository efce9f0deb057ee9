-- Rule (summary counts, compressed): for every stratum and outcome, the number of index
-- presentations per (follow-up, days to event), both capped at the longest window
-- ({{ max_window }} days): follow-up above it is eligible for every window, an event after it
-- counts for none. cohort_summary reads every window's counts and medians from here.
CREATE OR REPLACE TABLE cohorts.fct_stratum_outcome_days AS
WITH per_index AS (
    SELECT
        f.encounter_id,
        o.outcome,
        least(f.followup_days, {{ max_window }}) AS followup_days_capped,
        CASE WHEN e.days_to_event <= {{ max_window }} THEN e.days_to_event END
            AS days_to_event_capped
    FROM cohorts.int_followup AS f
    CROSS JOIN cohorts.dim_outcomes AS o
    LEFT JOIN cohorts.fct_index_outcomes AS e
        ON e.encounter_id = f.encounter_id AND e.outcome = o.outcome
)
SELECT
    s.stratum_type,
    s.stratum_value,
    p.outcome,
    p.followup_days_capped,
    p.days_to_event_capped,
    count(*) AS n_index
FROM per_index AS p
JOIN cohorts.int_index_strata AS s USING (encounter_id)
GROUP BY ALL;
