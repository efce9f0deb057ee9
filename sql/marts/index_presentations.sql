-- Mart index_presentations: one row per index presentation (a new back-pain episode),
-- with its strata attributes, index and episode tiers, score, completeness, every red
-- flag, days_to_<outcome> for each outcome (first event on or after the index, NULL if
-- none) and followup_days (data end - index date).
CREATE OR REPLACE TABLE marts._build_index_presentations AS
SELECT
    encounter_id,
    patient_id,
    index_date,
    age_years,
    age_band,
    sex,
    pain_site,
    smoking_status,
    index_tier,
    episode_max_tier,
    score,
    completeness,
    {{ red_flag_names }},
    {{ days_to_outcome_names }},
    followup_days
FROM cohorts.fct_index_presentations;
