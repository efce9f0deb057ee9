-- Mart imaging_overuse (HEDIS-style "Use of Imaging Studies for Low Back Pain"):
-- low-tier index presentations aged {{ overuse_min_age }}-{{ overuse_max_age }} eligible for {{ overuse_window }} days
-- (index_date + {{ overuse_window }} <= data end) form the denominator; imaged when any outcome
-- of cohorts.yml overuse.outcomes (spine imaging, X-ray, CT, MRI) falls within 0..{{ overuse_window }}
-- days. share_not_imaged (higher is better) with its Wilson 95% interval, for all and
-- per age band and sex; n_censored counts the ones not yet followed for {{ overuse_window }} days.
WITH denominator AS (
    SELECT
        i.age_band,
        i.sex,
        i.followup_days >= {{ overuse_window }} AS is_eligible,
        coalesce({{ days_to_overuse_outcome }} <= {{ overuse_window }}, FALSE) AS is_imaged
    FROM {{ ref('fct_index_presentations') }} AS i
    WHERE i.index_tier = '{{ overuse_tier }}'
      AND i.age_years BETWEEN {{ overuse_min_age }} AND {{ overuse_max_age }}
),
counts AS (
    SELECT
        CASE WHEN grouping(d.age_band) = 0 THEN 'age_band'
             WHEN grouping(d.sex) = 0 THEN 'sex' ELSE 'all' END AS stratum_type,
        CASE WHEN grouping(d.age_band) = 0 THEN d.age_band
             WHEN grouping(d.sex) = 0 THEN d.sex ELSE 'all' END AS stratum_value,
        count(*) FILTER (WHERE d.is_eligible) AS n_eligible,
        count(*) FILTER (WHERE d.is_eligible AND d.is_imaged) AS n_imaged,
        count(*) FILTER (WHERE NOT d.is_eligible) AS n_censored
    FROM denominator AS d
    GROUP BY GROUPING SETS ((), (d.age_band), (d.sex))
)
SELECT
    c.stratum_type,
    c.stratum_value,
    {{ overuse_window }} AS window_days,
    c.n_eligible,
    c.n_imaged,
    c.n_eligible - c.n_imaged AS n_not_imaged,
    CASE WHEN c.n_eligible > 0 THEN (c.n_eligible - c.n_imaged) / c.n_eligible END
        AS share_not_imaged,
    cohorts.wilson_low(c.n_eligible - c.n_imaged, c.n_eligible, {{ z }}) AS ci_low,
    cohorts.wilson_high(c.n_eligible - c.n_imaged, c.n_eligible, {{ z }}) AS ci_high,
    c.n_censored
FROM counts AS c
LEFT JOIN {{ ref('dim_stratum_types') }} AS st USING (stratum_type)
LEFT JOIN {{ ref('dim_stratum_values') }} AS sv USING (stratum_type, stratum_value)
ORDER BY st.type_rank, sv.value_rank NULLS LAST, c.stratum_value
