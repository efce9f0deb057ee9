-- Rule (index event: back_pain_presentation): every back-pain presentation
-- (features.presentation_flags.back_pain TRUE) dated on or before the data end is a
-- candidate index event. A patient's presentations are ordered by
-- (encounter_date, encounter_id). Only what the washout and episodes need is kept
-- here; int_index_presentations fetches the rest for the index presentations alone.
CREATE OR REPLACE TABLE cohorts.int_back_pain_presentations AS
SELECT encounter_id, patient_id, encounter_date, tier, rules_version
FROM features.presentation_flags
WHERE back_pain
  AND encounter_date <= (SELECT data_end_date FROM cohorts.int_data_end);
