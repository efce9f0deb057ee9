-- Rule (episode): an episode is the index presentation and the patient's back-pain
-- presentations after it until the next index. Every back-pain presentation belongs to
-- the episode of the latest index at or before it in (encounter_date, encounter_id)
-- order; the first presentation of a patient is always an index.
CREATE OR REPLACE TABLE cohorts.int_episodes AS
WITH numbered AS (
    SELECT
        *,
        sum(CAST(is_index AS INTEGER)) OVER (
            PARTITION BY patient_id ORDER BY encounter_date, encounter_id
            ROWS UNBOUNDED PRECEDING
        ) AS episode_seq
    FROM cohorts.int_washout
)
SELECT
    encounter_id,
    patient_id,
    encounter_date,
    tier,
    is_index,
    episode_seq,
    first_value(encounter_id) OVER episode AS index_encounter_id,
    first_value(encounter_date) OVER episode AS index_date
FROM numbered
WINDOW episode AS (
    PARTITION BY patient_id, episode_seq ORDER BY encounter_date, encounter_id
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
);
