-- Mart cohort_summary: per stratum x window x outcome, n_eligible (index_date + W <= data
-- end), n_events (eligible, first event within 0..W days), rate = n_events / n_eligible
-- with its Wilson 95% interval, the median days to the event among the n_events (the
-- middle value, or the mean of the two middle values), n_censored (not eligible) and,
-- among them, n_died (follow-up ended at death before W days).
-- Rows come in display order: stratum types as in cohorts.yml, tiers and age bands in
-- their order, flags in their fixed order, other values most common first.
-- The strata are named by text once, in the few denominator rows: the event counts and
-- medians are grouped, windowed and joined on integer keys (the stratum's display rank,
-- the window, the outcome's rank).
WITH denominators AS (
    SELECT
        h.stratum_type,
        h.stratum_value,
        w.window_days,
        CAST(coalesce(sum(h.n_index) FILTER (WHERE h.followup_days_capped >= w.window_days), 0)
            AS BIGINT) AS n_eligible,
        CAST(coalesce(sum(h.n_index) FILTER (WHERE h.followup_days_capped < w.window_days), 0)
            AS BIGINT) AS n_censored,
        CAST(coalesce(sum(h.n_index) FILTER (
            WHERE h.followup_days_capped < w.window_days AND h.is_died), 0) AS BIGINT) AS n_died,
        CAST(sum(h.n_index) AS BIGINT) AS n_stratum
    FROM {{ ref('fct_stratum_outcome_days') }} AS h
    CROSS JOIN {{ ref('dim_windows') }} AS w
    WHERE h.outcome IS NULL
    GROUP BY ALL
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
    LEFT JOIN {{ ref('dim_stratum_types') }} AS st USING (stratum_type)
    LEFT JOIN {{ ref('dim_stratum_values') }} AS sv USING (stratum_type, stratum_value)
),
-- index presentations per (stratum, window, outcome, days to the event), eligible for the
-- window with the event within it
event_days AS (
    SELECT
        v.stratum_rank,
        w.window_days,
        o.outcome_rank,
        h.days_to_event AS days,
        sum(h.n_index) AS n
    FROM {{ ref('fct_stratum_outcome_days') }} AS h
    JOIN value_order AS v USING (stratum_type, stratum_value)
    JOIN {{ ref('dim_outcomes') }} AS o USING (outcome)
    CROSS JOIN {{ ref('dim_windows') }} AS w
    WHERE h.followup_days_capped >= w.window_days AND h.days_to_event <= w.window_days
    GROUP BY ALL
),
cumulative AS (
    SELECT
        stratum_rank,
        window_days,
        outcome_rank,
        days,
        sum(n) OVER per_group_by_day AS n_through,
        sum(n) OVER per_group AS n_all
    FROM event_days
    WINDOW per_group AS (PARTITION BY stratum_rank, window_days, outcome_rank),
        per_group_by_day AS (PARTITION BY stratum_rank, window_days, outcome_rank ORDER BY days)
),
events AS (
    SELECT
        stratum_rank, window_days, outcome_rank,
        CAST(max(n_all) AS BIGINT) AS n_events,
        (min(days) FILTER (WHERE n_through >= (n_all + 1) // 2)
         + min(days) FILTER (WHERE n_through >= n_all // 2 + 1)) / 2.0 AS median_days_to_event
    FROM cumulative
    GROUP BY ALL
),
counts AS (
    SELECT
        d.stratum_type,
        d.stratum_value,
        v.stratum_rank,
        d.window_days,
        o.outcome,
        o.outcome_rank,
        d.n_eligible,
        coalesce(e.n_events, 0) AS n_events,
        e.median_days_to_event,
        d.n_censored,
        d.n_died
    FROM denominators AS d
    JOIN value_order AS v USING (stratum_type, stratum_value)
    CROSS JOIN {{ ref('dim_outcomes') }} AS o
    LEFT JOIN events AS e
        ON e.stratum_rank = v.stratum_rank AND e.window_days = d.window_days
        AND e.outcome_rank = o.outcome_rank
)
SELECT
    stratum_type,
    stratum_value,
    window_days,
    outcome,
    n_eligible,
    n_events,
    CASE WHEN n_eligible > 0 THEN n_events / n_eligible END AS rate,
    cohorts.wilson_low(n_events, n_eligible, {{ z }}) AS ci_low,
    cohorts.wilson_high(n_events, n_eligible, {{ z }}) AS ci_high,
    median_days_to_event,
    n_censored,
    n_died
FROM counts
ORDER BY stratum_rank, window_days, outcome_rank
