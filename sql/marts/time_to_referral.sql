-- Mart time_to_referral: cumulative incidence of the first {{ km_outcome }} by day 0..{{ max_day }}
-- after the index, per index tier and for `all`, by Kaplan-Meier. An index presentation
-- leaves the risk set at its first event, or, without one within its follow-up, is
-- censored at the end of follow-up (followup_days: data end, death or observation end;
-- still at risk on that day, events counted before censorings). n_at_risk(t) = presentations whose exit day is t or later; S(t) = product
-- over s <= t of (1 - n_events(s) / n_at_risk(s)); cumulative_incidence = 1 - S(t).
-- The 95% interval is Greenwood's variance on the log(-log S) scale (Kalbfleisch &
-- Prentice; R survfit conf.type = "log-log"): S^exp(+-z sigma / |log S|), with
-- sigma^2 = sum n_events / (n_at_risk (n_at_risk - n_events)); NULL while S = 1 or once
-- S = 0.
WITH subjects AS (
    SELECT
        i.index_tier AS tier,
        least({{ days_to_km_outcome }}, i.followup_days) AS exit_day,
        coalesce({{ days_to_km_outcome }} <= i.followup_days, FALSE) AS is_event
    FROM {{ ref('fct_index_presentations') }} AS i
),
exits AS (
    SELECT tier, exit_day, is_event FROM subjects
    UNION ALL
    SELECT 'all', exit_day, is_event FROM subjects
),
exit_counts AS (
    SELECT
        tier,
        least(exit_day, {{ max_day }} + 1) AS day,
        count(*) FILTER (WHERE is_event AND exit_day <= {{ max_day }}) AS n_events,
        count(*) AS n_exits
    FROM exits
    GROUP BY ALL
),
totals AS (SELECT tier, sum(n_exits) AS n_total FROM exit_counts GROUP BY tier),
grid AS (
    SELECT t.tier, t.n_total, d.day
    FROM totals AS t CROSS JOIN range(0, {{ max_day }} + 1) AS d(day)
),
daily AS (
    SELECT
        g.tier,
        CAST(g.day AS INTEGER) AS day,
        CAST(g.n_total - coalesce(sum(coalesce(x.n_exits, 0)) OVER before, 0) AS BIGINT)
            AS n_at_risk,
        CAST(coalesce(x.n_events, 0) AS BIGINT) AS n_events
    FROM grid AS g
    LEFT JOIN exit_counts AS x ON x.tier = g.tier AND x.day = g.day
    WINDOW before AS (PARTITION BY g.tier ORDER BY g.day
                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
km AS (
    SELECT
        *,
        product(CASE WHEN n_at_risk > 0 THEN 1 - n_events / n_at_risk ELSE 1 END)
            OVER running AS survival,
        sum(CASE WHEN n_at_risk > n_events THEN n_events / (n_at_risk * (n_at_risk - n_events))
                 ELSE 0 END) OVER running AS greenwood
    FROM daily
    WINDOW running AS (PARTITION BY tier ORDER BY day ROWS UNBOUNDED PRECEDING)
)
SELECT
    tier,
    day,
    n_at_risk,
    n_events,
    1 - survival AS cumulative_incidence,
    CASE WHEN survival > 0 AND survival < 1 THEN
        1 - survival ** exp(-{{ z }} * sqrt(greenwood) / abs(ln(survival))) END AS ci_low,
    CASE WHEN survival > 0 AND survival < 1 THEN
        1 - survival ** exp({{ z }} * sqrt(greenwood) / abs(ln(survival))) END AS ci_high
FROM km
LEFT JOIN {{ ref('dim_tiers') }} AS t USING (tier)
ORDER BY t.tier_rank NULLS FIRST, day
