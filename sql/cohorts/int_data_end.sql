-- Rule (data end): the latest encounter_date in staging.intake and referral_date in
-- staging.referrals, unless cohorts.yml (data_end.date) or the build sets it. Anything
-- dated after the data end is ignored by every later model.
CREATE OR REPLACE TABLE cohorts.int_data_end AS
SELECT coalesce(
    CAST({{ data_end }} AS DATE),
    greatest(
        (SELECT max(encounter_date) FROM staging.intake),
        (SELECT max(referral_date) FROM staging.referrals)
    )
) AS data_end_date;
