-- Rule (episode): an episode is the index presentation and the patient's back-pain
-- presentations after it until the next index. Every back-pain presentation belongs to
-- the episode of the latest index at or before it in (encounter_date, encounter_id)
-- order (the last index so far, one pass over the patient's presentations); the first
-- presentation of a patient is always an index.
CREATE OR REPLACE TABLE cohorts.int_episodes AS
SELECT
    encounter_id,
    patient_id,
    encounter_date,
    tier,
    is_index,
    sum(CAST(is_index AS INTEGER)) OVER patient_order AS episode_seq,
    last_value(CASE WHEN is_index THEN encounter_id END IGNORE NULLS) OVER patient_order
        AS index_encounter_id,
    last_value(CASE WHEN is_index THEN encounter_date END IGNORE NULLS) OVER patient_order
        AS index_date
FROM cohorts.int_washout
WINDOW patient_order AS (
    PARTITION BY patient_id ORDER BY encounter_date, encounter_id
    ROWS UNBOUNDED PRECEDING
);
