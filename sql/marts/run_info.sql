-- The build's own record, for publishing to log in ops.run_log: the data end and the
-- rules version(s) of the scored presentations the cohorts were built from. Read when
-- the marts are published, then dropped; never published itself.
{{ config(materialized='table', publish_as='none') }}
SELECT
    d.data_end_date,
    (SELECT string_agg(DISTINCT rules_version, ',' ORDER BY rules_version)
     FROM {{ ref('int_back_pain_presentations') }}) AS rules_version
FROM {{ ref('int_data_end') }} AS d
