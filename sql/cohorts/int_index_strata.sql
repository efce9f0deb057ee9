-- Rule (strata): each index presentation belongs to one stratum of every stratum type:
-- all, index_tier, episode_max_tier, age_band, sex, pain_site, smoking_status and
-- pattern (its TRUE red flags joined by `+` in the fixed order of cohorts.yml, `none`
-- when there are none); and to one `flag` stratum per red flag that is TRUE (NULL is
-- not TRUE). Except for flag, the strata of a type partition the index presentations.
-- One row per index presentation: a column per stratum type, the TRUE flags as a list.
CREATE OR REPLACE TABLE cohorts.int_index_strata AS
WITH flagged AS (
    SELECT
        *,
        list_filter([{{ true_flag_items }}], lambda x: x IS NOT NULL) AS true_flags
    FROM cohorts.int_index_presentations
)
SELECT
    encounter_id,
    index_tier,
    episode_max_tier,
    age_band,
    sex,
    pain_site,
    smoking_status,
    coalesce(nullif(array_to_string(true_flags, '+'), ''), 'none') AS pattern,
    true_flags
FROM flagged;
