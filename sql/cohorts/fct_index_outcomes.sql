-- Rule (first event): for each index presentation and outcome, the first event of that
-- outcome on or after the index date (referrals before the index are ignored);
-- days_to_<outcome> = referral_date - index_date, NULL when there is none. One row per
-- index presentation with at least one event, a column per outcome: what the
-- index_presentations mart shows, in one aggregation over the (index, referral) pairs
-- (a referral is an event of outcome O when O's bit is set in its outcome_mask).
{{ config(materialized='table') }}
SELECT
    i.presentation_key,
    {{ days_to_outcome_pivot }}
FROM {{ ref('int_washout') }} AS i
JOIN {{ ref('int_referral_outcomes') }} AS e
    ON e.patient_id = i.patient_id AND e.referral_date >= i.encounter_date
WHERE i.is_index
GROUP BY i.presentation_key, i.encounter_date
