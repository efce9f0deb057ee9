-- Rule (inclusion: washout, {{ washout_days }} days): a back-pain presentation is an index
-- presentation when no other back-pain presentation of the same patient lies in the
-- {{ washout_days }} days before it, the same day included. Ordering by
-- (encounter_date, encounter_id), that is: the previous presentation is more than
-- {{ washout_days }} days earlier, or there is none. Same day: not an index (the earlier
-- encounter_id is); exactly {{ washout_days }} days: not an index; one day more: an index.
-- patient_seq numbers a patient's presentations in that order, so that the episodes
-- order them again by one integer instead of (encounter_date, encounter_id).
CREATE OR REPLACE TABLE cohorts.int_washout AS
SELECT
    presentation_key,
    patient_id,
    encounter_date,
    tier,
    row_number() OVER patient_order AS patient_seq,
    coalesce(encounter_date - lag(encounter_date) OVER patient_order > {{ washout_days }}, TRUE)
        AS is_index
FROM cohorts.int_back_pain_presentations
WINDOW patient_order AS (PARTITION BY patient_id ORDER BY encounter_date, encounter_id);
