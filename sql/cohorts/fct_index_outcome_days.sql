-- Rule (first event, one row per outcome): fct_index_outcomes unpivoted: for each index
-- presentation and outcome with an event, days_to_event (NULLs, outcomes without an
-- event, are left out). A view for imaging_overuse, which picks its outcomes by name
-- from cohorts.yml (overuse.outcomes).
CREATE OR REPLACE VIEW cohorts.fct_index_outcome_days AS
UNPIVOT (
    SELECT presentation_key, {{ days_to_outcome_as_outcome }}
    FROM cohorts.fct_index_outcomes
)
ON {{ outcome_names }}
INTO NAME outcome VALUE days_to_event;
