-- Rule (strata): each index presentation belongs to one stratum of every stratum type:
-- all, index_tier, episode_max_tier, age_band, sex, pain_site, smoking_status and
-- pattern (its TRUE red flags joined by `+` in the fixed order of cohorts.yml, `none`
-- when there are none); and to one `flag` stratum per red flag that is TRUE (NULL is
-- not TRUE). Except for flag, the strata of a type partition the index presentations.
CREATE OR REPLACE TABLE cohorts.int_index_strata AS
WITH flags AS (
    UNPIVOT (SELECT encounter_id, {{ red_flag_names }} FROM cohorts.fct_index_presentations)
    ON {{ red_flag_names }}
    INTO NAME flag VALUE is_true
)
SELECT encounter_id, 'all' AS stratum_type, 'all' AS stratum_value
FROM cohorts.fct_index_presentations
UNION ALL
SELECT encounter_id, 'index_tier', index_tier FROM cohorts.fct_index_presentations
UNION ALL
SELECT encounter_id, 'episode_max_tier', episode_max_tier FROM cohorts.fct_index_presentations
UNION ALL
SELECT encounter_id, 'flag', flag FROM flags WHERE is_true
UNION ALL
SELECT encounter_id, 'age_band', age_band FROM cohorts.fct_index_presentations
UNION ALL
SELECT encounter_id, 'sex', sex FROM cohorts.fct_index_presentations
UNION ALL
SELECT encounter_id, 'pain_site', pain_site FROM cohorts.fct_index_presentations
UNION ALL
SELECT encounter_id, 'smoking_status', smoking_status FROM cohorts.fct_index_presentations
UNION ALL
SELECT encounter_id, 'pattern', coalesce(nullif(concat_ws('+', {{ pattern_parts }}), ''), 'none')
FROM cohorts.fct_index_presentations;
