-- Rule (index presentation facts): one row per index presentation with its strata
-- attributes, every red flag and their red_flag_mask, the days to the first event of
-- each outcome (NULL if none) and the follow-up to the data end. The one table every
-- mart and count reads for the index presentations, so that none of them joins again
-- on encounter_id. A view of the index_presentations mart as built (with its working
-- columns), which sql/marts/index_presentations.sql writes to the warehouse just before:
-- the wide table exists once, on disk, not also in memory.
CREATE OR REPLACE VIEW cohorts.fct_index_presentations AS
SELECT * FROM {{ warehouse }}.marts._build_index_presentations;
