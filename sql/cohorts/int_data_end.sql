-- Rule (data end): the latest encounter_date in staging.intake and referral_date in
-- staging.referrals, unless cohorts.yml (data_end.date) or the build sets it. Anything
-- dated after the data end is ignored by every later model.
{{ config(materialized='table') }}
SELECT coalesce(
    CAST({{ data_end }} AS DATE),
    greatest(
        (SELECT max(encounter_date) FROM {{ source('staging', 'intake') }}),
        (SELECT max(referral_date) FROM {{ source('staging', 'referrals') }})
    )
) AS data_end_date
