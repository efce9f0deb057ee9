-- Rule (index presentation facts): one row per index presentation with its strata
-- attributes, every red flag, the days to the first event of each outcome (NULL if
-- none) and the follow-up to the data end. The one table every mart and count reads
-- for the index presentations, so that none of them joins again on encounter_id.
CREATE OR REPLACE TABLE cohorts.fct_index_presentations AS
SELECT
    f.* EXCLUDE (data_end_date),
    {{ days_to_outcome_columns }}
FROM cohorts.int_followup AS f
LEFT JOIN cohorts.fct_index_outcomes AS d ON d.presentation_key = f.presentation_key;
