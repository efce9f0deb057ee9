-- Mart documentation_quality: for every intake field of cohorts.yml
-- documentation_quality.fields, per tier and for `all`, over all presentations on or
-- before the data end: n_presentations, n_documented (stored value not NULL),
-- n_missing and share_documented. Stored values, not the effective ones the scorer
-- derives from codes and text: this measures what the intake form recorded.
CREATE OR REPLACE TABLE marts_build.documentation_quality AS
WITH base AS (
    SELECT f.tier, {{ documented_columns }}
    FROM staging.intake AS i
    JOIN features.presentation_flags AS f USING (encounter_id)
    WHERE i.encounter_date <= (SELECT data_end_date FROM cohorts.int_data_end)
),
long AS (
    UNPIVOT base ON {{ documented_names }} INTO NAME field VALUE is_documented
),
counts AS (
    SELECT coalesce(tier, 'all') AS tier, field,
        count(*) AS n_presentations,
        count(*) FILTER (WHERE is_documented) AS n_documented
    FROM long
    GROUP BY GROUPING SETS ((field), (tier, field))
)
SELECT
    c.tier,
    c.field,
    c.n_presentations,
    c.n_documented,
    c.n_presentations - c.n_documented AS n_missing,
    c.n_documented / c.n_presentations AS share_documented
FROM counts AS c
LEFT JOIN cohorts.dim_tiers AS t USING (tier)
JOIN cohorts.dim_documentation_fields AS d USING (field)
ORDER BY t.tier_rank NULLS FIRST, d.field_rank;
