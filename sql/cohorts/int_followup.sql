-- Rule (end of follow-up and censoring): follow-up of an index presentation ends at the
-- earliest of the data end, the patient's death_date and observation_end_date
-- (staging.patients, optional: a NULL or missing row ends nothing; least() skips NULL).
-- followup_days = end - index date, 0 when the end lies before the index. Eligible for
-- window W when followup_days >= W; otherwise censored for W. followup_end_reason names
-- the date that ended it (death, then observation_end, then data_end on a tie).
-- A view over the index presentations, written out by the index_presentations mart.
{{ config(materialized='view') }}
WITH ends AS (
    SELECT
        i.*,
        d.data_end_date,
        p.death_date,
        least(d.data_end_date, p.death_date, p.observation_end_date) AS followup_end_date,
        p.observation_end_date
    FROM {{ ref('int_index_presentations') }} AS i
    CROSS JOIN {{ ref('int_data_end') }} AS d
    LEFT JOIN {{ source('staging', 'patients') }} AS p ON p.patient_id = i.patient_id
)
SELECT
    * EXCLUDE (death_date, observation_end_date),
    greatest(followup_end_date - index_date, 0) AS followup_days,
    CASE
        WHEN death_date = followup_end_date THEN 'death'
        WHEN observation_end_date = followup_end_date THEN 'observation_end'
        ELSE 'data_end'
    END AS followup_end_reason
FROM ends
