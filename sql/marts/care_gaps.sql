-- Mart care_gaps: index presentations whose expected referral did not come in time
-- (cohorts.yml care_gaps): urgent ones with no spine imaging within 1 day, high ones
-- with no imaging within 14 days. Listed once the window has passed (index_date +
-- window_days <= data end), with days_to_outcome (the first such referral, later than
-- the window, NULL if none yet) and days_since_index at the data end.
CREATE OR REPLACE TABLE marts._build_care_gaps AS
SELECT
    g.care_gap,
    i.encounter_id,
    i.patient_id,
    i.index_date,
    i.index_tier,
    i.episode_max_tier,
    i.score,
    g.outcome AS expected_outcome,
    g.window_days,
    e.days_to_event AS days_to_outcome,
    i.followup_days AS days_since_index
FROM cohorts.fct_index_presentations AS i
JOIN cohorts.dim_care_gaps AS g ON g.index_tier = i.index_tier
LEFT JOIN cohorts.fct_index_outcome_days AS e
    ON e.presentation_key = i.presentation_key AND e.outcome = g.outcome
WHERE i.followup_days >= g.window_days
  AND (e.days_to_event IS NULL OR e.days_to_event > g.window_days)
ORDER BY g.gap_rank, i.index_date, i.encounter_id;
