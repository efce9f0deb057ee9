-- Rule (index presentations): the candidates of the index event that pass the washout,
-- with index_tier (the tier at the index), episode_max_tier, sex and smoking status
-- from staging.intake (NULL smoking status is unknown), every red flag, and the age
-- band (bands of cohorts.yml; an age outside every band gets the `other` label).
CREATE OR REPLACE TABLE cohorts.int_index_presentations AS
SELECT
    f.encounter_id,
    f.patient_id,
    f.encounter_date AS index_date,
    f.age_years,
    coalesce(b.age_band, {{ age_band_other }}) AS age_band,
    i.sex,
    f.pain_site,
    coalesce(i.smoking_status, 'unknown') AS smoking_status,
    f.tier AS index_tier,
    m.episode_max_tier,
    f.score,
    f.completeness,
    f.rules_version,
    {{ red_flag_columns_f }}
FROM cohorts.int_washout AS w
JOIN features.presentation_flags AS f USING (encounter_id)
JOIN staging.intake AS i USING (encounter_id)
LEFT JOIN cohorts.int_episode_max_tier AS m USING (encounter_id)
LEFT JOIN cohorts.dim_age_bands AS b ON f.age_years BETWEEN b.min_age AND b.max_age
WHERE w.is_index;
