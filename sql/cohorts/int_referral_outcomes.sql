-- Rule (outcome events): a referral is an event of outcome O when its type equals O's
-- referral_type and its (given or derived) modality and body region equal O's where O
-- names one (cohorts.yml outcomes; a NULL criterion matches anything). One referral
-- can be an event of several outcomes (an MRI of the spine is imaging_any,
-- imaging_spine and imaging_mri). Only what the first events need is kept.
CREATE OR REPLACE TABLE cohorts.int_referral_outcomes AS
SELECT r.patient_id, r.referral_date, o.outcome
FROM cohorts.int_referrals_classified AS r
JOIN cohorts.dim_outcomes AS o
    ON r.referral_type = o.referral_type
    AND (o.modality IS NULL OR r.modality IS NOT DISTINCT FROM o.modality)
    AND (o.body_region IS NULL OR r.body_region IS NOT DISTINCT FROM o.body_region);
