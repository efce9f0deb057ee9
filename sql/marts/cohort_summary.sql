-- Mart cohort_summary: per stratum x window x outcome, n_eligible (index_date + W <= data
-- end), n_events (eligible, first event within 0..W days), rate = n_events / n_eligible
-- with its Wilson 95% interval, the median days to the event among the n_events (the
-- middle value, or the mean of the two middle values), and n_censored (not eligible).
-- Rows come in display order: stratum types as in cohorts.yml, tiers and age bands in
-- their order, flags in their fixed order, other values most common first.
CREATE OR REPLACE TABLE marts_build.cohort_summary AS
WITH cells AS (
    SELECT h.*, w.window_days
    FROM cohorts.fct_stratum_outcome_days AS h
    CROSS JOIN cohorts.dim_windows AS w
),
counts AS (
    SELECT
        stratum_type,
        stratum_value,
        window_days,
        outcome,
        CAST(coalesce(sum(n_index) FILTER (WHERE followup_days_capped >= window_days), 0)
            AS BIGINT) AS n_eligible,
        CAST(coalesce(sum(n_index) FILTER (
            WHERE followup_days_capped >= window_days AND days_to_event_capped <= window_days
        ), 0) AS BIGINT) AS n_events,
        CAST(coalesce(sum(n_index) FILTER (WHERE followup_days_capped < window_days), 0)
            AS BIGINT) AS n_censored,
        CAST(sum(n_index) AS BIGINT) AS n_stratum
    FROM cells
    GROUP BY ALL
),
event_days AS (
    SELECT
        stratum_type, stratum_value, window_days, outcome,
        days_to_event_capped AS days,
        sum(n_index) AS n
    FROM cells
    WHERE followup_days_capped >= window_days AND days_to_event_capped <= window_days
    GROUP BY ALL
),
cumulative AS (
    SELECT
        *,
        sum(n) OVER (PARTITION BY stratum_type, stratum_value, window_days, outcome
                     ORDER BY days) AS n_through,
        sum(n) OVER (PARTITION BY stratum_type, stratum_value, window_days, outcome) AS n_all
    FROM event_days
),
medians AS (
    SELECT
        stratum_type, stratum_value, window_days, outcome,
        (min(days) FILTER (WHERE n_through >= (n_all + 1) // 2)
         + min(days) FILTER (WHERE n_through >= n_all // 2 + 1)) / 2.0 AS median_days_to_event
    FROM cumulative
    GROUP BY ALL
),
value_order AS (
    SELECT stratum_type, stratum_value, max(n_stratum) AS n_stratum
    FROM counts GROUP BY ALL
)
SELECT
    c.stratum_type,
    c.stratum_value,
    c.window_days,
    c.outcome,
    c.n_eligible,
    c.n_events,
    CASE WHEN c.n_eligible > 0 THEN c.n_events / c.n_eligible END AS rate,
    cohorts.wilson_low(c.n_events, c.n_eligible, {{ z }}) AS ci_low,
    cohorts.wilson_high(c.n_events, c.n_eligible, {{ z }}) AS ci_high,
    m.median_days_to_event,
    c.n_censored
FROM counts AS c
LEFT JOIN medians AS m USING (stratum_type, stratum_value, window_days, outcome)
JOIN value_order AS v USING (stratum_type, stratum_value)
LEFT JOIN cohorts.dim_stratum_types AS st USING (stratum_type)
LEFT JOIN cohorts.dim_stratum_values AS sv USING (stratum_type, stratum_value)
JOIN cohorts.dim_outcomes AS o USING (outcome)
ORDER BY st.type_rank, sv.value_rank NULLS LAST, v.n_stratum DESC, c.stratum_value,
    c.window_days, o.outcome_rank;
