-- Mart index_presentations: one row per index presentation (a new back-pain episode),
-- with its strata attributes, index and episode tiers, score, completeness, every red
-- flag, days_to_<outcome> for each outcome (first event on or after the index, NULL if
-- none) and followup_days (data end - index date).
CREATE OR REPLACE TABLE marts._build_index_presentations AS
SELECT * FROM cohorts.fct_index_presentations;
