-- Mart imaging_overuse: the two overuse measures of cohorts.yml overuse, one row per
-- measure and stratum (all, then each age group). hedis_lbp: int_hedis_lbp_denominator;
-- low_value_imaging: int_low_value_episodes. Of a measure's population, those followed
-- for {{ overuse_window }} days (followup_days >= {{ overuse_window }}) are n_eligible, the rest n_censored; imaged when
-- spine imaging falls 0..{{ overuse_window }} days after the index. share_not_imaged (higher is
-- better) with its Wilson 95% interval.
WITH population AS (
    SELECT 'hedis_lbp' AS measure, 1 AS measure_rank, * FROM {{ ref('int_hedis_lbp_denominator') }}
    UNION ALL BY NAME
    SELECT 'low_value_imaging' AS measure, 2 AS measure_rank, *
    FROM {{ ref('int_low_value_episodes') }}
),
flagged AS (
    SELECT
        p.measure,
        p.measure_rank,
        g.age_group,
        p.followup_days >= {{ overuse_window }} AS is_eligible,
        coalesce(p.days_to_outcome <= {{ overuse_window }}, FALSE) AS is_imaged
    FROM population AS p
    LEFT JOIN {{ ref('dim_overuse_age_groups') }} AS g
        ON p.age_years BETWEEN g.min_age AND g.max_age
),
measures AS (
    SELECT measure, measure_rank FROM (VALUES ('hedis_lbp', 1), ('low_value_imaging', 2))
        AS m(measure, measure_rank)
),
strata AS (
    SELECT m.measure, m.measure_rank, 'all' AS stratum_type, 'all' AS stratum_value,
        0 AS group_rank
    FROM measures AS m
    UNION ALL
    SELECT m.measure, m.measure_rank, 'age_group', g.age_group, g.group_rank
    FROM measures AS m
    CROSS JOIN {{ ref('dim_overuse_age_groups') }} AS g
),
counts AS (
    SELECT
        s.measure,
        s.measure_rank,
        s.stratum_type,
        s.stratum_value,
        s.group_rank,
        count(f.measure) FILTER (WHERE f.is_eligible) AS n_eligible,
        count(f.measure) FILTER (WHERE f.is_eligible AND f.is_imaged) AS n_imaged,
        count(f.measure) FILTER (WHERE NOT f.is_eligible) AS n_censored
    FROM strata AS s
    LEFT JOIN flagged AS f
        ON f.measure = s.measure
        AND (s.stratum_type = 'all' OR f.age_group = s.stratum_value)
    GROUP BY ALL
)
SELECT
    measure,
    stratum_type,
    stratum_value,
    {{ overuse_window }} AS window_days,
    n_eligible,
    n_imaged,
    n_eligible - n_imaged AS n_not_imaged,
    CASE WHEN n_eligible > 0 THEN (n_eligible - n_imaged) / n_eligible END AS share_not_imaged,
    cohorts.wilson_low(n_eligible - n_imaged, n_eligible, {{ z }}) AS ci_low,
    cohorts.wilson_high(n_eligible - n_imaged, n_eligible, {{ z }}) AS ci_high,
    n_censored
FROM counts
ORDER BY measure_rank, group_rank
