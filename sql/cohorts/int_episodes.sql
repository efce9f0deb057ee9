-- Rule (episode): an episode is the index presentation and the patient's back-pain
-- presentations after it until the next index. Every back-pain presentation belongs to
-- the episode of the latest index at or before it in (encounter_date, encounter_id)
-- order (patient_seq; the last index so far, one pass over the patient's
-- presentations); the first presentation of a patient is always an index. A view: its
-- readers (int_episode_max_tier, int_low_value_episodes) read it only when the washout
-- is shorter than their days; int_care_gap_triggers places its few presentations in
-- their episodes itself (an ASOF join).
{{ config(materialized='view') }}
SELECT
    presentation_key,
    patient_id,
    encounter_date,
    patient_seq,
    tier_rank,
    is_index,
    last_value(CASE WHEN is_index THEN presentation_key END IGNORE NULLS) OVER patient_order
        AS index_key,
    -- the latest index date so far: dates only grow in patient order
    max(CASE WHEN is_index THEN encounter_date END) OVER patient_order AS index_date
FROM {{ ref('int_washout') }}
WINDOW patient_order AS (PARTITION BY patient_id ORDER BY patient_seq ROWS UNBOUNDED PRECEDING)
