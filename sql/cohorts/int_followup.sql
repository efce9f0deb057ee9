-- Rule (follow-up and censoring): followup_days = data end - index date. An index
-- presentation is eligible for window W when index_date + W <= data end, that is
-- followup_days >= W; otherwise it is censored for W. A view over the index
-- presentations, written out by the index_presentations mart.
CREATE OR REPLACE VIEW cohorts.int_followup AS
SELECT
    i.*,
    d.data_end_date,
    d.data_end_date - i.index_date AS followup_days
FROM cohorts.int_index_presentations AS i
CROSS JOIN cohorts.int_data_end AS d;
