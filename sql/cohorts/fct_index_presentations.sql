-- Rule (index presentation facts): one row per index presentation with its strata
-- attributes, every red flag, the days to the first event of each outcome (NULL if
-- none) and the follow-up to the data end. A view, computed once, as the
-- index_presentations mart writes it to the warehouse (no copy held in memory).
CREATE OR REPLACE VIEW cohorts.fct_index_presentations AS
WITH days AS (
    SELECT
        encounter_id,
        {{ days_to_outcome_pivot }}
    FROM cohorts.fct_index_outcomes
    GROUP BY encounter_id
)
SELECT
    i.encounter_id,
    i.patient_id,
    i.index_date,
    i.age_years,
    i.age_band,
    i.sex,
    i.pain_site,
    i.smoking_status,
    i.index_tier,
    i.episode_max_tier,
    i.score,
    i.completeness,
    {{ red_flag_columns_i }},
    {{ days_to_outcome_columns }},
    f.followup_days
FROM cohorts.int_index_presentations AS i
JOIN cohorts.int_followup AS f USING (encounter_id)
LEFT JOIN days AS d USING (encounter_id);
