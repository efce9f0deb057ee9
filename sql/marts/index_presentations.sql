-- Mart index_presentations: one row per index presentation (a new back-pain episode),
-- with its strata attributes, index and episode tiers, score, completeness, every red
-- flag, days_to_<outcome> for each outcome (first event on or after the index, NULL if
-- none) and followup_days (data end - index date).
-- Rule (index presentation facts): the index presentations (int_followup) with the days
-- to the first event of each outcome (fct_index_outcomes).
-- Built here, among the cohort models, and written to the warehouse once: every later
-- count and mart reads it through the view cohorts.fct_index_presentations instead of a
-- second, in-memory copy. Two working columns follow the mart's own: red_flag_mask (the
-- pattern and flag strata group on it) and presentation_key (imaging_overuse joins on
-- it); the build drops them before publishing (build.py WORKING_COLUMNS).
-- Storage, not content: the ids are stored zstd and the red flags roaring, which DuckDB
-- compresses in less time than its own choice (dict_fsst, bitpacking) into as many
-- blocks or fewer; users see the same VARCHAR and BOOLEAN columns.
CREATE OR REPLACE TABLE marts._build_index_presentations (
    encounter_id VARCHAR USING COMPRESSION zstd,
    patient_id VARCHAR USING COMPRESSION zstd,
    index_date DATE,
    age_years INTEGER,
    age_band VARCHAR,
    sex VARCHAR,
    pain_site VARCHAR,
    smoking_status VARCHAR,
    index_tier VARCHAR,
    episode_max_tier VARCHAR,
    score INTEGER,
    completeness DOUBLE,
    {{ red_flag_definitions }},
    {{ days_to_outcome_definitions }},
    followup_days BIGINT,
    red_flag_mask BIGINT,
    presentation_key BIGINT
);
INSERT INTO marts._build_index_presentations
SELECT
    f.encounter_id,
    f.patient_id,
    f.index_date,
    f.age_years,
    f.age_band,
    f.sex,
    f.pain_site,
    f.smoking_status,
    f.index_tier,
    f.episode_max_tier,
    f.score,
    f.completeness,
    {{ red_flag_columns_f }},
    {{ days_to_outcome_columns }},
    f.followup_days,
    f.red_flag_mask,
    f.presentation_key
FROM cohorts.int_followup AS f
LEFT JOIN cohorts.fct_index_outcomes AS d ON d.presentation_key = f.presentation_key;
