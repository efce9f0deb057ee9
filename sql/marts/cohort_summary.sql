-- Mart cohort_summary: per stratum x window x outcome, n_eligible (index_date + W <= data
-- end), n_events (eligible, first event within 0..W days), rate = n_events / n_eligible
-- with its Wilson 95% interval, the median days to the event among the n_events (the
-- middle value, or the mean of the two middle values), and n_censored (not eligible).
-- Rows come in display order: stratum types as in cohorts.yml, tiers and age bands in
-- their order, flags in their fixed order, other values most common first.
CREATE OR REPLACE TABLE marts._build_cohort_summary AS
WITH denominators AS (
    SELECT
        h.stratum_type,
        h.stratum_value,
        w.window_days,
        CAST(coalesce(sum(h.n_index) FILTER (WHERE h.followup_days_capped >= w.window_days), 0)
            AS BIGINT) AS n_eligible,
        CAST(coalesce(sum(h.n_index) FILTER (WHERE h.followup_days_capped < w.window_days), 0)
            AS BIGINT) AS n_censored,
        CAST(sum(h.n_index) AS BIGINT) AS n_stratum
    FROM cohorts.fct_stratum_outcome_days AS h
    CROSS JOIN cohorts.dim_windows AS w
    WHERE h.outcome IS NULL
    GROUP BY ALL
),
event_days AS (
    SELECT
        h.stratum_type, h.stratum_value, w.window_days, h.outcome,
        h.days_to_event AS days,
        sum(h.n_index) AS n
    FROM cohorts.fct_stratum_outcome_days AS h
    CROSS JOIN cohorts.dim_windows AS w
    WHERE h.outcome IS NOT NULL
      AND h.followup_days_capped >= w.window_days AND h.days_to_event <= w.window_days
    GROUP BY ALL
),
counts AS (
    SELECT
        d.stratum_type,
        d.stratum_value,
        d.window_days,
        o.outcome,
        d.n_eligible,
        CAST(coalesce(e.n_events, 0) AS BIGINT) AS n_events,
        d.n_censored,
        d.n_stratum
    FROM denominators AS d
    CROSS JOIN cohorts.dim_outcomes AS o
    LEFT JOIN (
        SELECT stratum_type, stratum_value, window_days, outcome, sum(n) AS n_events
        FROM event_days
        GROUP BY ALL
    ) AS e USING (stratum_type, stratum_value, window_days, outcome)
),
value_order AS (
    -- display order of the strata, ranked once per stratum rather than sorting every row
    -- by these keys
    SELECT
        v.stratum_type,
        v.stratum_value,
        row_number() OVER (
            ORDER BY st.type_rank, sv.value_rank NULLS LAST, v.n_stratum DESC, v.stratum_value
        ) AS stratum_rank
    FROM (
        SELECT stratum_type, stratum_value, max(n_stratum) AS n_stratum
        FROM denominators GROUP BY ALL
    ) AS v
    LEFT JOIN cohorts.dim_stratum_types AS st USING (stratum_type)
    LEFT JOIN cohorts.dim_stratum_values AS sv USING (stratum_type, stratum_value)
),
-- the running counts per group are kept by integer keys (the stratum's rank, the
-- window, the outcome's rank): the window sort carries no text
cumulative AS (
    SELECT
        v.stratum_rank,
        e.window_days,
        o.outcome_rank,
        e.days,
        sum(e.n) OVER per_group_by_day AS n_through,
        sum(e.n) OVER per_group AS n_all
    FROM event_days AS e
    JOIN value_order AS v USING (stratum_type, stratum_value)
    JOIN cohorts.dim_outcomes AS o USING (outcome)
    WINDOW per_group AS (PARTITION BY v.stratum_rank, e.window_days, o.outcome_rank),
        per_group_by_day AS (PARTITION BY v.stratum_rank, e.window_days, o.outcome_rank
                             ORDER BY e.days)
),
medians AS (
    SELECT
        stratum_rank, window_days, outcome_rank,
        (min(days) FILTER (WHERE n_through >= (n_all + 1) // 2)
         + min(days) FILTER (WHERE n_through >= n_all // 2 + 1)) / 2.0 AS median_days_to_event
    FROM cumulative
    GROUP BY ALL
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
JOIN value_order AS v USING (stratum_type, stratum_value)
JOIN cohorts.dim_outcomes AS o USING (outcome)
LEFT JOIN medians AS m
    ON m.stratum_rank = v.stratum_rank AND m.window_days = c.window_days
    AND m.outcome_rank = o.outcome_rank
ORDER BY v.stratum_rank, c.window_days, o.outcome_rank;
