-- Rule (first event): for each index presentation and outcome, the first event of that
-- outcome on or after the index date (referrals before the index are ignored);
-- days_to_event = referral_date - index_date. No row when there is none.
CREATE OR REPLACE TABLE cohorts.fct_index_outcomes AS
SELECT
    f.encounter_id,
    e.outcome,
    min(e.referral_date) - f.index_date AS days_to_event
FROM cohorts.int_followup AS f
JOIN cohorts.int_referral_outcomes AS e
    ON e.patient_id = f.patient_id AND e.referral_date >= f.index_date
GROUP BY f.encounter_id, e.outcome, f.index_date;
