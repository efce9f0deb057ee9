-- Rule (index presentations): the candidates of the index event that pass the washout,
-- with index_tier (the tier at the index), episode_max_tier and the age band
-- (bands of cohorts.yml; an age outside every band gets the `other` label).
CREATE OR REPLACE TABLE cohorts.int_index_presentations AS
SELECT
    p.encounter_id,
    p.patient_id,
    p.encounter_date AS index_date,
    p.age_years,
    coalesce(b.age_band, {{ age_band_other }}) AS age_band,
    p.sex,
    p.pain_site,
    p.smoking_status,
    p.tier AS index_tier,
    m.episode_max_tier,
    p.score,
    p.completeness,
    p.rules_version,
    {{ red_flag_columns_p }}
FROM cohorts.int_back_pain_presentations AS p
JOIN cohorts.int_washout AS w USING (encounter_id)
LEFT JOIN cohorts.int_episode_max_tier AS m USING (encounter_id)
LEFT JOIN cohorts.dim_age_bands AS b ON p.age_years BETWEEN b.min_age AND b.max_age
WHERE w.is_index;
