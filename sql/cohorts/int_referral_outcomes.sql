-- Rule (outcome events): a referral is an event of outcome O when its type equals O's
-- referral_type and its (given or derived) modality and body region equal O's where O
-- names one (cohorts.yml outcomes; a NULL criterion matches anything). One referral
-- can be an event of several outcomes (an MRI of the spine is imaging_any,
-- imaging_spine and imaging_mri). Imaging of a known region listed in cohorts.yml
-- imaging_excluded_regions (`other`: a limb, the head, abdomen or pelvis) is an event of
-- no outcome; imaging of the spine, the chest or an unknown (NULL) region counts. Only
-- what the first events need is kept: one row per referral that is an event of any outcome, its outcomes as the bits of
-- outcome_mask (1, 2, 4, ... in the order of cohorts.yml; build.py outcome_bits), so
-- that fct_index_outcomes pairs each index presentation with a referral once, not
-- once per outcome of the referral.
{{ config(materialized='table') }}
SELECT patient_id, referral_date, outcome_mask
FROM (
    SELECT
        r.patient_id,
        r.referral_date,
        {{ referral_outcome_mask }} AS outcome_mask
    FROM {{ ref('int_referrals_classified') }} AS r
    WHERE NOT (r.referral_type = 'imaging'
               AND coalesce(r.body_region IN ({{ imaging_excluded_regions }}), FALSE))
)
WHERE outcome_mask <> 0
