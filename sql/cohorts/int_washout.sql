-- Rule (inclusion: washout, {{ washout_days }} days): a back-pain presentation is an index
-- presentation when no other back-pain presentation of the same patient lies in the
-- {{ washout_days }} days before it, the same day included. Ordering by
-- (encounter_date, encounter_id), that is: the previous presentation is more than
-- {{ washout_days }} days earlier, or there is none. Same day: not an index (the earlier
-- encounter_id is); exactly {{ washout_days }} days: not an index; one day more: an index.
-- patient_seq numbers a patient's presentations in that order, so that the episodes
-- order them again by one integer instead of (encounter_date, encounter_id); tier_rank
-- (cohorts.dim_tiers) stands for the tier, a narrower column for every presentation.
-- tier_rank_ahead, for int_episode_max_tier, in the same pass over the patient's
-- presentations: the highest tier (lowest tier_rank) among those dated from this one's
-- date to {{ max_tier_days }} days later.
{{ config(materialized='table') }}
SELECT
    b.presentation_key,
    b.patient_id,
    b.encounter_date,
    t.tier_rank,
    row_number() OVER patient_order AS patient_seq,
    coalesce(b.encounter_date - lag(b.encounter_date) OVER patient_order > {{ washout_days }}, TRUE)
        AS is_index,
    min(t.tier_rank) OVER days_ahead AS tier_rank_ahead
FROM {{ ref('int_back_pain_presentations') }} AS b
LEFT JOIN {{ ref('dim_tiers') }} AS t ON t.tier = b.tier
WINDOW
    patient_order AS (PARTITION BY b.patient_id ORDER BY b.encounter_date, b.encounter_id),
    days_ahead AS (
        PARTITION BY b.patient_id ORDER BY b.encounter_date
        RANGE BETWEEN CURRENT ROW AND {{ max_tier_days }} FOLLOWING
    )
