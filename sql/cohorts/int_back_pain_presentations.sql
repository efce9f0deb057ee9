-- Rule (index event: back_pain_presentation): every back-pain presentation
-- (features.presentation_flags.back_pain TRUE) dated on or before the data end is a
-- candidate index event. A patient's presentations are ordered by
-- (encounter_date, encounter_id); sex and smoking status come from staging.intake.
CREATE OR REPLACE TABLE cohorts.int_back_pain_presentations AS
SELECT
    f.encounter_id,
    f.patient_id,
    f.encounter_date,
    f.age_years,
    i.sex,
    coalesce(i.smoking_status, 'unknown') AS smoking_status,
    f.pain_site,
    f.tier,
    f.score,
    f.completeness,
    f.rules_version,
    {{ red_flag_columns_f }}
FROM features.presentation_flags AS f
JOIN staging.intake AS i USING (encounter_id)
WHERE f.back_pain
  AND f.encounter_date <= (SELECT data_end_date FROM cohorts.int_data_end);
