-- Mart documentation_quality: for every intake field of cohorts.yml
-- documentation_quality.fields, per tier and for `all`, over all presentations on or
-- before the data end: n_presentations, n_documented (stored value not NULL),
-- n_missing and share_documented. Stored values, not the effective ones the scorer
-- derives from codes and text: this measures what the intake form recorded. Counted in
-- one pass (count(field) counts the values not NULL), then one row per field.
-- The flags come first in the join: DuckDB then builds its hash table on their
-- (encounter_id, tier) and streams intake's fields past it, rather than hashing every
-- intake row with its fields (a third of this mart's time).
WITH documented AS (
    SELECT
        coalesce(f.tier, 'all') AS tier,
        count(*) AS n_presentations,
        {{ documented_counts }}
    FROM {{ source('features', 'presentation_flags') }} AS f
    JOIN {{ source('staging', 'intake') }} AS i USING (encounter_id)
    WHERE i.encounter_date <= (SELECT data_end_date FROM {{ ref('int_data_end') }})
    GROUP BY GROUPING SETS ((), (f.tier))
),
counts AS (
    UNPIVOT documented ON {{ documented_names }} INTO NAME field VALUE n_documented
)
SELECT
    c.tier,
    c.field,
    c.n_presentations,
    c.n_documented,
    c.n_presentations - c.n_documented AS n_missing,
    c.n_documented / c.n_presentations AS share_documented
FROM counts AS c
LEFT JOIN {{ ref('dim_tiers') }} AS t USING (tier)
JOIN {{ ref('dim_documentation_fields') }} AS d USING (field)
ORDER BY t.tier_rank NULLS FIRST, d.field_rank
