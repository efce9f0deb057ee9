-- Rule (pattern and flag strata): an index presentation's pattern is its TRUE red flags
-- joined by `+` in the fixed order of cohorts.yml, `none` when there are none; it is in
-- one `flag` stratum per red flag that is TRUE (NULL is not TRUE). Both follow from its
-- red_flag_mask, so they are worked out once per distinct mask (a few thousand where
-- there are millions of presentations) and the counts group on the mask.
{{ config(materialized='table') }}
WITH masks AS (
    SELECT DISTINCT red_flag_mask FROM {{ ref('fct_index_presentations') }}
)
SELECT
    m.red_flag_mask,
    coalesce(string_agg(r.flag, '+' ORDER BY r.flag_rank), 'none') AS pattern,
    coalesce(list(r.flag ORDER BY r.flag_rank) FILTER (WHERE r.flag IS NOT NULL), [])
        AS true_flags
FROM masks AS m
LEFT JOIN {{ ref('dim_red_flags') }} AS r ON m.red_flag_mask & r.flag_bit <> 0
GROUP BY m.red_flag_mask
