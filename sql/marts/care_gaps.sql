-- Mart care_gaps: index presentations whose expected referral did not come in time
-- (cohorts.yml care_gaps): emergency ones with no spine imaging within 1 day, high ones
-- with no imaging within 14 days. Listed once the window has passed (index_date +
-- window_days <= data end), with days_to_outcome (the first such referral, later than
-- the window, NULL if none yet) and days_since_index at the data end.
WITH expected AS (
    SELECT
        g.care_gap,
        g.gap_rank,
        i.encounter_id,
        i.patient_id,
        i.index_date,
        i.index_tier,
        i.episode_max_tier,
        i.score,
        g.outcome AS expected_outcome,
        g.window_days,
        {{ days_to_gap_outcome }} AS days_to_outcome,
        i.followup_days AS days_since_index
    FROM {{ ref('fct_index_presentations') }} AS i
    JOIN {{ ref('dim_care_gaps') }} AS g ON g.index_tier = i.index_tier
    WHERE i.followup_days >= g.window_days
)
SELECT
    care_gap,
    encounter_id,
    patient_id,
    index_date,
    index_tier,
    episode_max_tier,
    score,
    expected_outcome,
    window_days,
    days_to_outcome,
    days_since_index
FROM expected
WHERE days_to_outcome IS NULL OR days_to_outcome > window_days
ORDER BY gap_rank, index_date, encounter_id
