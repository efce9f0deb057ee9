-- Rule (follow-up and censoring): followup_days = data end - index date. An index
-- presentation is eligible for window W when index_date + W <= data end, that is
-- followup_days >= W; otherwise it is censored for W. A view over the index
-- presentations, written out by the index_presentations mart.
{{ config(materialized='view') }}
SELECT
    i.*,
    d.data_end_date,
    d.data_end_date - i.index_date AS followup_days
FROM {{ ref('int_index_presentations') }} AS i
CROSS JOIN {{ ref('int_data_end') }} AS d
