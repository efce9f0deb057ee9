-- Rule (index event: back_pain_presentation): every back-pain presentation
-- (features.presentation_flags.back_pain TRUE) dated on or before the data end is a
-- candidate index event. A patient's presentations are ordered by
-- (encounter_date, encounter_id).
-- presentation_key is the row's rowid in features.presentation_flags: the later models
-- join and group on this integer instead of the text encounter_id, and
-- int_index_presentations fetches the rest of the row by it for the index
-- presentations alone. A view (read once, by the washout): nothing is copied here.
{{ config(materialized='view') }}
SELECT
    f.rowid AS presentation_key,
    f.encounter_id,
    f.patient_id,
    f.encounter_date,
    f.tier,
    f.rules_version
FROM {{ source('features', 'presentation_flags') }} AS f
WHERE f.back_pain
  AND f.encounter_date <= (SELECT data_end_date FROM {{ ref('int_data_end') }})
