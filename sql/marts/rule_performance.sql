-- Mart rule_performance, when staging.diagnoses has rows: how well each tier threshold
-- (index tier at or above it) and each red flag (TRUE at the index) predict the target
-- (cohorts.yml rule_performance: a diagnosis in the lung_cancer or bone_metastasis value
-- set with 0 <= diagnosis_date - index_date <= {{ rule_within_days }}, on or before the data end).
-- Every index presentation counts; one without the diagnosis is a negative.
-- TP, FP, FN, TN; sensitivity TP/(TP+FN), specificity TN/(TN+FP), PPV TP/(TP+FP),
-- NPV TN/(TN+FN), LR+ = sensitivity / (1 - specificity); NULL where a denominator is 0.
WITH diagnoses AS (
    SELECT patient_id, diagnosis_date,
        {{ normalize_code('code') }} AS code_norm, code_system
    FROM {{ source('staging', 'diagnoses') }}
    WHERE diagnosis_date <= (SELECT data_end_date FROM {{ ref('int_data_end') }})
),
target_codes AS (
    SELECT t.target, v.code, v.code_system, v.is_prefix
    FROM {{ ref('dim_rule_targets') }} AS t
    JOIN {{ source('staging', 'value_sets') }} AS v USING (value_set)
),
target_diagnoses AS (
    SELECT DISTINCT c.target, d.patient_id, d.diagnosis_date
    FROM diagnoses AS d
    JOIN target_codes AS c
        ON d.code_system = c.code_system
        AND (d.code_norm = c.code OR (c.is_prefix AND starts_with(d.code_norm, c.code)))
),
-- the index presentations with the target: the few diagnoses are hashed and every index
-- presentation is looked up once, rather than testing each (target, presentation) pair
with_target AS (
    SELECT DISTINCT d.target, i.presentation_key
    FROM {{ ref('fct_index_presentations') }} AS i
    JOIN target_diagnoses AS d
        ON d.patient_id = i.patient_id
        AND d.diagnosis_date - i.index_date BETWEEN 0 AND {{ rule_within_days }}
),
outcomes AS (
    SELECT
        t.target,
        i.index_tier,
        i.red_flag_mask,
        w.presentation_key IS NOT NULL AS has_target
    FROM {{ ref('fct_index_presentations') }} AS i
    CROSS JOIN (SELECT DISTINCT target FROM {{ ref('dim_rule_targets') }}) AS t
    LEFT JOIN with_target AS w
        ON w.target = t.target AND w.presentation_key = i.presentation_key
),
-- index presentations per target, index tier, red flags and outcome: the rules below
-- count positives over these few groups, not over every presentation
outcome_groups AS (
    SELECT target, index_tier, red_flag_mask, has_target, count(*) AS n_index
    FROM outcomes
    GROUP BY ALL
),
rules AS (
    SELECT 'tier_at_or_above' AS rule_type, tier AS rule, threshold_rank AS rule_rank
    FROM {{ ref('dim_tier_thresholds') }}
    UNION ALL
    SELECT 'flag', flag, 100 + flag_rank FROM {{ ref('dim_red_flags') }}
),
positives AS (
    SELECT o.target, 'tier_at_or_above' AS rule_type, th.tier AS rule, o.has_target, o.n_index
    FROM outcome_groups AS o
    JOIN {{ ref('dim_tiers') }} AS it ON it.tier = o.index_tier
    JOIN {{ ref('dim_tier_thresholds') }} AS th ON it.tier_rank <= th.threshold_rank
    UNION ALL
    SELECT o.target, 'flag', unnest(p.true_flags), o.has_target, o.n_index
    FROM outcome_groups AS o
    JOIN {{ ref('int_red_flag_patterns') }} AS p USING (red_flag_mask)
),
totals AS (
    SELECT target,
        coalesce(sum(n_index) FILTER (WHERE has_target), 0) AS n_target,
        coalesce(sum(n_index) FILTER (WHERE NOT has_target), 0) AS n_non_target
    FROM outcome_groups GROUP BY target
),
positive_counts AS (
    SELECT target, rule_type, rule,
        sum(n_index) FILTER (WHERE has_target) AS tp,
        sum(n_index) FILTER (WHERE NOT has_target) AS fp
    FROM positives
    GROUP BY ALL
),
confusion AS (
    SELECT
        t.target, r.rule_type, r.rule, r.rule_rank,
        CAST(coalesce(p.tp, 0) AS BIGINT) AS tp,
        CAST(coalesce(p.fp, 0) AS BIGINT) AS fp,
        CAST(t.n_target - coalesce(p.tp, 0) AS BIGINT) AS fn,
        CAST(t.n_non_target - coalesce(p.fp, 0) AS BIGINT) AS tn
    FROM totals AS t
    CROSS JOIN rules AS r
    LEFT JOIN positive_counts AS p USING (target, rule_type, rule)
    WHERE (SELECT count(*) FROM {{ source('staging', 'diagnoses') }}) > 0
)
SELECT
    target, rule_type, rule, tp, fp, fn, tn,
    CASE WHEN tp + fn > 0 THEN tp / (tp + fn) END AS sensitivity,
    CASE WHEN tn + fp > 0 THEN tn / (tn + fp) END AS specificity,
    CASE WHEN tp + fp > 0 THEN tp / (tp + fp) END AS ppv,
    CASE WHEN tn + fn > 0 THEN tn / (tn + fn) END AS npv,
    CASE WHEN tp + fn > 0 AND tn + fp > 0 AND fp > 0
         THEN (tp / (tp + fn)) / (fp / (tn + fp)) END AS lr_positive
FROM confusion
ORDER BY target, rule_rank
