-- Mart rule_performance, when staging.diagnoses has rows: how well each tier threshold
-- (index tier at or above it) and each red flag (TRUE at the index) predict each target
-- of cohorts.yml rule_performance (int_target_diagnoses: ICD-10-CM or SNOMED through the
-- crosswalk). Per target, an index presentation whose patient had the target diagnosed
-- before the index date is excluded; one whose first diagnosis on or after the index is
-- 0..{{ rule_within_days }} days after it and within its follow-up is a target; the rest count
-- as negatives only when followed for {{ rule_followup_days }} days, and are excluded otherwise.
-- TP, FP, FN, TN; sensitivity TP/(TP+FN), specificity TN/(TN+FP), PPV TP/(TP+FP),
-- NPV TN/(TN+FN), each with its Wilson 95% interval; LR+ = sensitivity / (1 -
-- specificity) with the log-method interval exp(ln LR+ +- z sqrt(1/TP - 1/(TP+FN) +
-- 1/FP - 1/(FP+TN))) (Simel, Samsa & Matchar 1991); NULL where a denominator is 0, and
-- LR+ and its interval NULL when TP or FP is 0.
WITH targets AS (
    SELECT DISTINCT target FROM {{ ref('dim_rule_targets') }}
),
-- per target and index presentation with a diagnosis of the target: any before the
-- index, and the days to the first on or after it. The few diagnoses are hashed and
-- every index presentation of their patients looked up once.
diagnosed AS (
    SELECT
        d.target,
        i.presentation_key,
        any_value(i.index_tier) AS index_tier,
        any_value(i.red_flag_mask) AS red_flag_mask,
        any_value(i.followup_days) AS followup_days,
        bool_or(d.diagnosis_date < i.index_date) AS has_prior,
        min(d.diagnosis_date - i.index_date) FILTER (WHERE d.diagnosis_date >= i.index_date)
            AS days_to_target
    FROM {{ ref('fct_index_presentations') }} AS i
    JOIN {{ ref('int_target_diagnoses') }} AS d ON d.patient_id = i.patient_id
    GROUP BY d.target, i.presentation_key
),
-- index presentations per index tier and red flags among those followed for
-- {{ rule_followup_days }} days: without a diagnosis of a target, these are its negatives
followed_groups AS (
    SELECT index_tier, red_flag_mask, count(*) AS n_index
    FROM {{ ref('fct_index_presentations') }}
    WHERE followup_days >= {{ rule_followup_days }}
    GROUP BY ALL
),
-- per target, the followed index presentations counted as negatives, less those with a
-- diagnosis of the target, plus those again as they count: excluded when diagnosed before
-- the index, a target when first diagnosed 0..{{ rule_within_days }} days after it within the
-- follow-up, else a negative when followed. Only the few diagnosed presentations are
-- looked at per target, not every index presentation once per target.
counted AS (
    SELECT t.target, g.index_tier, g.red_flag_mask, FALSE AS has_target, g.n_index
    FROM followed_groups AS g
    CROSS JOIN targets AS t
    UNION ALL
    SELECT target, index_tier, red_flag_mask, FALSE, -1
    FROM diagnosed
    WHERE followup_days >= {{ rule_followup_days }}
    UNION ALL
    SELECT target, index_tier, red_flag_mask, has_target, 1
    FROM (
        SELECT *, coalesce(
            days_to_target <= least({{ rule_within_days }}, followup_days), FALSE
        ) AS has_target
        FROM diagnosed
        WHERE NOT has_prior
    )
    WHERE has_target OR followup_days >= {{ rule_followup_days }}
),
-- index presentations per target, index tier, red flags and outcome, among those that
-- count: the rules below count positives over these few groups
outcome_groups AS (
    SELECT target, index_tier, red_flag_mask, has_target, CAST(sum(n_index) AS BIGINT) AS n_index
    FROM counted
    GROUP BY ALL
    HAVING sum(n_index) > 0
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
    SELECT t.target,
        coalesce(sum(o.n_index) FILTER (WHERE o.has_target), 0) AS n_target,
        coalesce(sum(o.n_index) FILTER (WHERE NOT o.has_target), 0) AS n_non_target
    FROM targets AS t
    LEFT JOIN outcome_groups AS o USING (target)
    GROUP BY t.target
),
positive_counts AS (
    SELECT target, rule_type, rule,
        sum(n_index) FILTER (WHERE has_target) AS tp,
        sum(n_index) FILTER (WHERE NOT has_target) AS fp
    FROM positives
    GROUP BY ALL
),
target_order AS (
    SELECT target, min(rowid) AS target_rank FROM {{ ref('dim_rule_targets') }} GROUP BY target
),
confusion AS (
    SELECT
        t.target, o.target_rank, r.rule_type, r.rule, r.rule_rank,
        CAST(coalesce(p.tp, 0) AS BIGINT) AS tp,
        CAST(coalesce(p.fp, 0) AS BIGINT) AS fp,
        CAST(t.n_target - coalesce(p.tp, 0) AS BIGINT) AS fn,
        CAST(t.n_non_target - coalesce(p.fp, 0) AS BIGINT) AS tn
    FROM totals AS t
    JOIN target_order AS o USING (target)
    CROSS JOIN rules AS r
    LEFT JOIN positive_counts AS p USING (target, rule_type, rule)
    WHERE (SELECT count(*) FROM {{ source('staging', 'diagnoses') }}) > 0
),
log_lr AS (
    SELECT
        *,
        CASE WHEN tp > 0 AND fp > 0 THEN
            ln((tp / (tp + fn)) / (fp / (fp + tn))) END AS ln_lr,
        CASE WHEN tp > 0 AND fp > 0 THEN
            sqrt(1 / tp - 1 / (tp + fn) + 1 / fp - 1 / (fp + tn)) END AS se_ln_lr
    FROM confusion
)
SELECT
    target, rule_type, rule, tp, fp, fn, tn,
    CASE WHEN tp + fn > 0 THEN tp / (tp + fn) END AS sensitivity,
    cohorts.wilson_low(tp, tp + fn, {{ z }}) AS sensitivity_ci_low,
    cohorts.wilson_high(tp, tp + fn, {{ z }}) AS sensitivity_ci_high,
    CASE WHEN tn + fp > 0 THEN tn / (tn + fp) END AS specificity,
    cohorts.wilson_low(tn, tn + fp, {{ z }}) AS specificity_ci_low,
    cohorts.wilson_high(tn, tn + fp, {{ z }}) AS specificity_ci_high,
    CASE WHEN tp + fp > 0 THEN tp / (tp + fp) END AS ppv,
    cohorts.wilson_low(tp, tp + fp, {{ z }}) AS ppv_ci_low,
    cohorts.wilson_high(tp, tp + fp, {{ z }}) AS ppv_ci_high,
    CASE WHEN tn + fn > 0 THEN tn / (tn + fn) END AS npv,
    cohorts.wilson_low(tn, tn + fn, {{ z }}) AS npv_ci_low,
    cohorts.wilson_high(tn, tn + fn, {{ z }}) AS npv_ci_high,
    exp(ln_lr) AS lr_positive,
    exp(ln_lr - {{ z }} * se_ln_lr) AS lr_positive_ci_low,
    exp(ln_lr + {{ z }} * se_ln_lr) AS lr_positive_ci_high
FROM log_lr
ORDER BY target_rank, rule_rank
