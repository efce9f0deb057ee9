-- features.presentation_flags: red-flag features, tier and score per presentation.
-- GENERATED from schemas/red_flags.yml (rules_version 6176f968341d4650) by
-- `python -m pipelines.scoring.render`; do not edit by hand.
WITH
inputs AS (
    -- The intake columns the rules read, and a key for each row (to join the
    -- history helpers back).
    SELECT
        encounter_id,
        patient_id,
        encounter_date,
        age_years,
        smoking_status,
        pain_duration_days,
        pain_score,
        back_pain,
        pain_site,
        prior_cancer,
        night_pain,
        rest_pain,
        progressive_pain,
        unexplained_weight_loss,
        fatigue,
        appetite_loss,
        fever,
        persistent_cough,
        dyspnea,
        chest_pain,
        hemoptysis,
        limb_numbness,
        limb_tingling,
        limb_weakness,
        bladder_bowel_dysfunction,
        chief_complaint,
        dx_codes,
        rowid AS row_key
    FROM staging.intake
),
complaint_pieces AS (
    -- Each distinct complaint (complaints repeat; the matches are joined back to
    -- the rows below), lower case, cut into pieces at the clause marks .;,: no
    -- phrase, cue or negation reaches across one, and pieces repeat far more than
    -- whole complaints do.
    SELECT chief_complaint, unnest(string_split_regex(lower(coalesce(chief_complaint, '')), '[\.;,]')) AS complaint_text
    FROM (SELECT DISTINCT chief_complaint FROM staging.intake)
),
pieces AS (
    -- Each distinct piece once: whether it holds a negation cue, and whether it
    -- mentions each phrase list, negated or not.
    SELECT
        complaint_text,
        (CASE WHEN contains(complaint_text, 'denied') OR contains(complaint_text, 'denies') OR contains(complaint_text, 'negative') OR contains(complaint_text, 'no') OR contains(complaint_text, 'without') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:negative[^a-z0-9''.;,]+for|without|denied|denies|not|no)(?:[^a-z0-9]|$)') ELSE false END) AS has_negation_cue,
        (CASE WHEN contains(complaint_text, 'back') OR contains(complaint_text, 'lower') OR contains(complaint_text, 'lumbago') OR contains(complaint_text, 'spinal') OR contains(complaint_text, 'spine') OR contains(complaint_text, 'thoracic') OR contains(complaint_text, 'upper') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:lower[^a-z0-9''.;,]+back[^a-z0-9''.;,]+pain|upper[^a-z0-9''.;,]+back[^a-z0-9''.;,]+pain|low[^a-z0-9''.;,]+back[^a-z0-9''.;,]+pain|thoracic[^a-z0-9''.;,]+pain|spinal[^a-z0-9''.;,]+pain|spine[^a-z0-9''.;,]+pain|back[^a-z0-9''.;,]+ache|back[^a-z0-9''.;,]+pain|backache|lumbago)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_back_pain,
        (CASE WHEN contains(complaint_text, 'back') OR contains(complaint_text, 'thoracic') OR contains(complaint_text, 'upper') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:upper[^a-z0-9''.;,]+back|mid[^a-z0-9''.;,]+back|thoracic)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_site_thoracic,
        (CASE WHEN contains(complaint_text, 'back') OR contains(complaint_text, 'lower') OR contains(complaint_text, 'lumbar') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:lower[^a-z0-9''.;,]+back|low[^a-z0-9''.;,]+back|lumbar)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_site_lumbar,
        (CASE WHEN contains(complaint_text, 'cancer') OR contains(complaint_text, 'history') OR contains(complaint_text, 'previous') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:history[^a-z0-9''.;,]+of[^a-z0-9''.;,]+cancer|previous[^a-z0-9''.;,]+cancer|prior[^a-z0-9''.;,]+cancer)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_prior_cancer,
        (CASE WHEN contains(complaint_text, 'night') OR contains(complaint_text, 'nocturnal') OR contains(complaint_text, 'wakes') OR contains(complaint_text, 'worse') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:nocturnal[^a-z0-9''.;,]+pain|wakes[^a-z0-9''.;,]+at[^a-z0-9''.;,]+night|worse[^a-z0-9''.;,]+at[^a-z0-9''.;,]+night|pain[^a-z0-9''.;,]+at[^a-z0-9''.;,]+night|night[^a-z0-9''.;,]+pain)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_night_pain,
        (CASE WHEN contains(complaint_text, 'pain') OR contains(complaint_text, 'relieved') OR contains(complaint_text, 'rest') OR contains(complaint_text, 'unrelated') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:unrelated[^a-z0-9''.;,]+to[^a-z0-9''.;,]+movement|not[^a-z0-9''.;,]+relieved[^a-z0-9''.;,]+by[^a-z0-9''.;,]+rest|pain[^a-z0-9''.;,]+at[^a-z0-9''.;,]+rest|rest[^a-z0-9''.;,]+pain)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_rest_pain,
        (CASE WHEN contains(complaint_text, 'getting') OR contains(complaint_text, 'progressive') OR contains(complaint_text, 'worsening') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:getting[^a-z0-9''.;,]+worse|progressive|worsening)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_progressive_pain,
        (CASE WHEN contains(complaint_text, 'losing') OR contains(complaint_text, 'weight') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:losing[^a-z0-9''.;,]+weight|lost[^a-z0-9''.;,]+weight|weight[^a-z0-9''.;,]+loss)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_unexplained_weight_loss,
        (CASE WHEN contains(complaint_text, 'exhaustion') OR contains(complaint_text, 'fatigue') OR contains(complaint_text, 'tiredness') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:exhaustion|tiredness|fatigue)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_fatigue,
        (CASE WHEN contains(complaint_text, 'appetite') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:loss[^a-z0-9''.;,]+of[^a-z0-9''.;,]+appetite|appetite[^a-z0-9''.;,]+loss|poor[^a-z0-9''.;,]+appetite)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_appetite_loss,
        (CASE WHEN contains(complaint_text, 'febrile') OR contains(complaint_text, 'fever') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:febrile|fever)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_fever,
        (CASE WHEN contains(complaint_text, 'cough') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:cough)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_persistent_cough,
        (CASE WHEN contains(complaint_text, 'breath') OR contains(complaint_text, 'dyspnea') OR contains(complaint_text, 'dyspnoea') OR contains(complaint_text, 'shortness') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:shortness[^a-z0-9''.;,]+of[^a-z0-9''.;,]+breath|short[^a-z0-9''.;,]+of[^a-z0-9''.;,]+breath|breathlessness|dyspnoea|dyspnea)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_dyspnea,
        (CASE WHEN contains(complaint_text, 'chest') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:chest[^a-z0-9''.;,]+pain)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_chest_pain,
        (CASE WHEN contains(complaint_text, 'coughing') OR contains(complaint_text, 'haemoptysis') OR contains(complaint_text, 'hemoptysis') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:coughing[^a-z0-9''.;,]+up[^a-z0-9''.;,]+blood|coughing[^a-z0-9''.;,]+blood|haemoptysis|hemoptysis)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_hemoptysis,
        (CASE WHEN contains(complaint_text, 'numb') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:numbness|numb)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_limb_numbness,
        (CASE WHEN contains(complaint_text, 'needles') OR contains(complaint_text, 'tingling') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:pins[^a-z0-9''.;,]+and[^a-z0-9''.;,]+needles|tingling)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_limb_tingling,
        (CASE WHEN contains(complaint_text, 'weak') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:weak[^a-z0-9''.;,]+arms|weak[^a-z0-9''.;,]+legs|weakness)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_limb_weakness,
        (CASE WHEN contains(complaint_text, 'dysfunction') OR contains(complaint_text, 'incontinence') OR contains(complaint_text, 'retention') THEN regexp_matches(complaint_text, '(?:^|[^a-z0-9])(?:bladder[^a-z0-9''.;,]+dysfunction|bowel[^a-z0-9''.;,]+dysfunction|urinary[^a-z0-9''.;,]+retention|incontinence)(?:[^a-z0-9]|$)') ELSE false END) AS mentions_bladder_bowel_dysfunction
    FROM (SELECT DISTINCT complaint_text FROM complaint_pieces)
),
piece_matches AS (
    -- Un-negated mentions: only pieces with a cue are normalised into words and
    -- clauses, and only those that also mention a phrase list look for it again
    -- with the negated mentions (cue to mention) cut out.
    SELECT
        *,
        (CASE WHEN NOT mentions_back_pain THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:lower back pain|upper back pain|low back pain|thoracic pain|spinal pain|spine pain|back ache|back pain|backache|lumbago)\b', ' , ', 'g'), '\b(?:lower back pain|upper back pain|low back pain|thoracic pain|spinal pain|spine pain|back ache|back pain|backache|lumbago)\b') END) AS affirms_back_pain,
        (CASE WHEN NOT mentions_site_thoracic THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:upper back|mid back|thoracic)\b', ' , ', 'g'), '\b(?:upper back|mid back|thoracic)\b') END) AS affirms_site_thoracic,
        (CASE WHEN NOT mentions_site_lumbar THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:lower back|low back|lumbar)\b', ' , ', 'g'), '\b(?:lower back|low back|lumbar)\b') END) AS affirms_site_lumbar,
        (CASE WHEN NOT mentions_prior_cancer THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:history of cancer|previous cancer|prior cancer)\b', ' , ', 'g'), '\b(?:history of cancer|previous cancer|prior cancer)\b') END) AS affirms_prior_cancer,
        (CASE WHEN NOT mentions_night_pain THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:nocturnal pain|wakes at night|worse at night|pain at night|night pain)\b', ' , ', 'g'), '\b(?:nocturnal pain|wakes at night|worse at night|pain at night|night pain)\b') END) AS affirms_night_pain,
        (CASE WHEN NOT mentions_rest_pain THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:unrelated to movement|not relieved by rest|pain at rest|rest pain)\b', ' , ', 'g'), '\b(?:unrelated to movement|not relieved by rest|pain at rest|rest pain)\b') END) AS affirms_rest_pain,
        (CASE WHEN NOT mentions_progressive_pain THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:getting worse|progressive|worsening)\b', ' , ', 'g'), '\b(?:getting worse|progressive|worsening)\b') END) AS affirms_progressive_pain,
        (CASE WHEN NOT mentions_unexplained_weight_loss THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:losing weight|lost weight|weight loss)\b', ' , ', 'g'), '\b(?:losing weight|lost weight|weight loss)\b') END) AS affirms_unexplained_weight_loss,
        (CASE WHEN NOT mentions_fatigue THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:exhaustion|tiredness|fatigue)\b', ' , ', 'g'), '\b(?:exhaustion|tiredness|fatigue)\b') END) AS affirms_fatigue,
        (CASE WHEN NOT mentions_appetite_loss THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:loss of appetite|appetite loss|poor appetite)\b', ' , ', 'g'), '\b(?:loss of appetite|appetite loss|poor appetite)\b') END) AS affirms_appetite_loss,
        (CASE WHEN NOT mentions_fever THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:febrile|fever)\b', ' , ', 'g'), '\b(?:febrile|fever)\b') END) AS affirms_fever,
        (CASE WHEN NOT mentions_persistent_cough THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:cough)\b', ' , ', 'g'), '\b(?:cough)\b') END) AS affirms_persistent_cough,
        (CASE WHEN NOT mentions_dyspnea THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:shortness of breath|short of breath|breathlessness|dyspnoea|dyspnea)\b', ' , ', 'g'), '\b(?:shortness of breath|short of breath|breathlessness|dyspnoea|dyspnea)\b') END) AS affirms_dyspnea,
        (CASE WHEN NOT mentions_chest_pain THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:chest pain)\b', ' , ', 'g'), '\b(?:chest pain)\b') END) AS affirms_chest_pain,
        (CASE WHEN NOT mentions_hemoptysis THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:coughing up blood|coughing blood|haemoptysis|hemoptysis)\b', ' , ', 'g'), '\b(?:coughing up blood|coughing blood|haemoptysis|hemoptysis)\b') END) AS affirms_hemoptysis,
        (CASE WHEN NOT mentions_limb_numbness THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:numbness|numb)\b', ' , ', 'g'), '\b(?:numbness|numb)\b') END) AS affirms_limb_numbness,
        (CASE WHEN NOT mentions_limb_tingling THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:pins and needles|tingling)\b', ' , ', 'g'), '\b(?:pins and needles|tingling)\b') END) AS affirms_limb_tingling,
        (CASE WHEN NOT mentions_limb_weakness THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:weak arms|weak legs|weakness)\b', ' , ', 'g'), '\b(?:weak arms|weak legs|weakness)\b') END) AS affirms_limb_weakness,
        (CASE WHEN NOT mentions_bladder_bowel_dysfunction THEN false WHEN NOT has_negation_cue THEN true ELSE regexp_matches(regexp_replace(clauses, '\b(?:(?:without|denied|denies|not|no)(?: [a-z0-9'']+){0,4}|(?:negative for)(?: [a-z0-9'']+){0,3}) (?:bladder dysfunction|bowel dysfunction|urinary retention|incontinence)\b', ' , ', 'g'), '\b(?:bladder dysfunction|bowel dysfunction|urinary retention|incontinence)\b') END) AS affirms_bladder_bowel_dysfunction
    FROM (
        SELECT *, CASE WHEN has_negation_cue THEN regexp_replace(regexp_replace(regexp_replace(complaint_text, '[^a-z0-9''.;,]{2,}|[^a-z0-9''.;, ]', ' ', 'g'), '\b(?:however|but)\b', ',', 'g'), ' *[\.;,][ \.;,]*', ' , ', 'g') END AS clauses
        FROM pieces
    )
),
complaint_matches AS (
    -- A complaint mentions (or affirms) a phrase list when one of its pieces does.
    SELECT
        chief_complaint,
        bool_or(mentions_back_pain) AS mentions_back_pain,
        bool_or(mentions_site_thoracic) AS mentions_site_thoracic,
        bool_or(mentions_site_lumbar) AS mentions_site_lumbar,
        bool_or(mentions_prior_cancer) AS mentions_prior_cancer,
        bool_or(mentions_night_pain) AS mentions_night_pain,
        bool_or(mentions_rest_pain) AS mentions_rest_pain,
        bool_or(mentions_progressive_pain) AS mentions_progressive_pain,
        bool_or(mentions_unexplained_weight_loss) AS mentions_unexplained_weight_loss,
        bool_or(mentions_fatigue) AS mentions_fatigue,
        bool_or(mentions_appetite_loss) AS mentions_appetite_loss,
        bool_or(mentions_fever) AS mentions_fever,
        bool_or(mentions_persistent_cough) AS mentions_persistent_cough,
        bool_or(mentions_dyspnea) AS mentions_dyspnea,
        bool_or(mentions_chest_pain) AS mentions_chest_pain,
        bool_or(mentions_hemoptysis) AS mentions_hemoptysis,
        bool_or(mentions_limb_numbness) AS mentions_limb_numbness,
        bool_or(mentions_limb_tingling) AS mentions_limb_tingling,
        bool_or(mentions_limb_weakness) AS mentions_limb_weakness,
        bool_or(mentions_bladder_bowel_dysfunction) AS mentions_bladder_bowel_dysfunction,
        bool_or(affirms_back_pain) AS affirms_back_pain,
        bool_or(affirms_site_thoracic) AS affirms_site_thoracic,
        bool_or(affirms_site_lumbar) AS affirms_site_lumbar,
        bool_or(affirms_prior_cancer) AS affirms_prior_cancer,
        bool_or(affirms_night_pain) AS affirms_night_pain,
        bool_or(affirms_rest_pain) AS affirms_rest_pain,
        bool_or(affirms_progressive_pain) AS affirms_progressive_pain,
        bool_or(affirms_unexplained_weight_loss) AS affirms_unexplained_weight_loss,
        bool_or(affirms_fatigue) AS affirms_fatigue,
        bool_or(affirms_appetite_loss) AS affirms_appetite_loss,
        bool_or(affirms_fever) AS affirms_fever,
        bool_or(affirms_persistent_cough) AS affirms_persistent_cough,
        bool_or(affirms_dyspnea) AS affirms_dyspnea,
        bool_or(affirms_chest_pain) AS affirms_chest_pain,
        bool_or(affirms_hemoptysis) AS affirms_hemoptysis,
        bool_or(affirms_limb_numbness) AS affirms_limb_numbness,
        bool_or(affirms_limb_tingling) AS affirms_limb_tingling,
        bool_or(affirms_limb_weakness) AS affirms_limb_weakness,
        bool_or(affirms_bladder_bowel_dysfunction) AS affirms_bladder_bowel_dysfunction
    FROM complaint_pieces JOIN piece_matches USING (complaint_text)
    GROUP BY chief_complaint
),
code_matches AS (
    -- Each distinct dx_codes once, normalised (upper case, no dots or spaces):
    -- whether one of its codes is in each value set.
    SELECT
        dx_codes,
        regexp_matches(codes, '(?:^|;)(?:M543[^;]*|M544[^;]*|M545[^;]*|M546|M548[^;]*|M549)(?:;|$)') AS codes_in_back_pain,
        regexp_matches(codes, '(?:^|;)(?:M546)(?:;|$)') AS codes_in_site_thoracic,
        regexp_matches(codes, '(?:^|;)(?:M545[^;]*)(?:;|$)') AS codes_in_site_lumbar,
        regexp_matches(codes, '(?:^|;)(?:C00[^;]*|C01[^;]*|C02[^;]*|C03[^;]*|C04[^;]*|C05[^;]*|C06[^;]*|C07[^;]*|C08[^;]*|C09[^;]*|C10[^;]*|C11[^;]*|C12[^;]*|C13[^;]*|C14[^;]*|C15[^;]*|C16[^;]*|C17[^;]*|C18[^;]*|C19[^;]*|C20[^;]*|C21[^;]*|C22[^;]*|C23[^;]*|C24[^;]*|C25[^;]*|C26[^;]*|C27[^;]*|C28[^;]*|C29[^;]*|C30[^;]*|C31[^;]*|C32[^;]*|C33[^;]*|C34[^;]*|C35[^;]*|C36[^;]*|C37[^;]*|C38[^;]*|C39[^;]*|C40[^;]*|C41[^;]*|C42[^;]*|C43[^;]*|C44[^;]*|C45[^;]*|C46[^;]*|C47[^;]*|C48[^;]*|C49[^;]*|C4A[^;]*|C50[^;]*|C51[^;]*|C52[^;]*|C53[^;]*|C54[^;]*|C55[^;]*|C56[^;]*|C57[^;]*|C58[^;]*|C59[^;]*|C60[^;]*|C61[^;]*|C62[^;]*|C63[^;]*|C64[^;]*|C65[^;]*|C66[^;]*|C67[^;]*|C68[^;]*|C69[^;]*|C70[^;]*|C71[^;]*|C72[^;]*|C73[^;]*|C74[^;]*|C75[^;]*|C76[^;]*|C77[^;]*|C78[^;]*|C79[^;]*|C7A[^;]*|C7B[^;]*|C80[^;]*|C81[^;]*|C82[^;]*|C83[^;]*|C84[^;]*|C85[^;]*|C86[^;]*|C87[^;]*|C88[^;]*|C89[^;]*|C90[^;]*|C91[^;]*|C92[^;]*|C93[^;]*|C94[^;]*|C95[^;]*|C96[^;]*|C97[^;]*|Z85[^;]*)(?:;|$)') AS codes_in_prior_cancer,
        regexp_matches(codes, '(?:^|;)(?:R634)(?:;|$)') AS codes_in_unexplained_weight_loss,
        regexp_matches(codes, '(?:^|;)(?:R53[^;]*)(?:;|$)') AS codes_in_fatigue,
        regexp_matches(codes, '(?:^|;)(?:R630)(?:;|$)') AS codes_in_appetite_loss,
        regexp_matches(codes, '(?:^|;)(?:R50[^;]*)(?:;|$)') AS codes_in_fever,
        regexp_matches(codes, '(?:^|;)(?:R05[^;]*)(?:;|$)') AS codes_in_persistent_cough,
        regexp_matches(codes, '(?:^|;)(?:R060[^;]*)(?:;|$)') AS codes_in_dyspnea,
        regexp_matches(codes, '(?:^|;)(?:R07[^;]*)(?:;|$)') AS codes_in_chest_pain,
        regexp_matches(codes, '(?:^|;)(?:R042)(?:;|$)') AS codes_in_hemoptysis,
        regexp_matches(codes, '(?:^|;)(?:R200|R201)(?:;|$)') AS codes_in_limb_numbness,
        regexp_matches(codes, '(?:^|;)(?:R202)(?:;|$)') AS codes_in_limb_tingling,
        regexp_matches(codes, '(?:^|;)(?:M6281|R531)(?:;|$)') AS codes_in_limb_weakness,
        regexp_matches(codes, '(?:^|;)(?:R15[^;]*|R32|R33[^;]*)(?:;|$)') AS codes_in_bladder_bowel_dysfunction,
        regexp_matches(codes, '(?:^|;)(?:F172[^;]*|Z720|Z87891)(?:;|$)') AS codes_in_ever_smoked
    FROM (
        SELECT dx_codes, upper(regexp_replace(regexp_replace(coalesce(dx_codes, ''), '[.\s]', '', 'g'), '[^\x00-\x7F]', '?', 'g')) AS codes
        FROM (SELECT DISTINCT dx_codes FROM staging.intake)
    )
),
effective AS (
    -- Effective value of each field: structured > code or un-negated text >
    -- negated-only text > NULL; back_pain never NULL; pain_site falls back to
    -- codes, text, then 'unspecified'.
    SELECT
        encounter_id,
        patient_id,
        encounter_date,
        age_years,
        smoking_status,
        pain_duration_days,
        pain_score,
        row_key,
        codes_in_ever_smoked,
        -- back_pain
        coalesce(back_pain, (codes_in_back_pain OR affirms_back_pain)) AS back_pain,
        -- pain_site
        coalesce(pain_site, (CASE WHEN (codes_in_site_thoracic OR affirms_site_thoracic) THEN 'thoracic' WHEN (codes_in_site_lumbar OR affirms_site_lumbar) THEN 'lumbar' ELSE 'unspecified' END)) AS pain_site,
        -- prior_cancer
        coalesce(prior_cancer, (CASE WHEN (codes_in_prior_cancer OR affirms_prior_cancer) THEN true WHEN mentions_prior_cancer THEN false ELSE NULL END)) AS prior_cancer,
        -- night_pain
        coalesce(night_pain, (CASE WHEN affirms_night_pain THEN true WHEN mentions_night_pain THEN false ELSE NULL END)) AS night_pain,
        -- rest_pain
        coalesce(rest_pain, (CASE WHEN affirms_rest_pain THEN true WHEN mentions_rest_pain THEN false ELSE NULL END)) AS rest_pain,
        -- progressive_pain
        coalesce(progressive_pain, (CASE WHEN affirms_progressive_pain THEN true WHEN mentions_progressive_pain THEN false ELSE NULL END)) AS progressive_pain,
        -- unexplained_weight_loss
        coalesce(unexplained_weight_loss, (CASE WHEN (codes_in_unexplained_weight_loss OR affirms_unexplained_weight_loss) THEN true WHEN mentions_unexplained_weight_loss THEN false ELSE NULL END)) AS unexplained_weight_loss,
        -- fatigue
        coalesce(fatigue, (CASE WHEN (codes_in_fatigue OR affirms_fatigue) THEN true WHEN mentions_fatigue THEN false ELSE NULL END)) AS fatigue,
        -- appetite_loss
        coalesce(appetite_loss, (CASE WHEN (codes_in_appetite_loss OR affirms_appetite_loss) THEN true WHEN mentions_appetite_loss THEN false ELSE NULL END)) AS appetite_loss,
        -- fever
        coalesce(fever, (CASE WHEN (codes_in_fever OR affirms_fever) THEN true WHEN mentions_fever THEN false ELSE NULL END)) AS fever,
        -- persistent_cough
        coalesce(persistent_cough, (CASE WHEN (codes_in_persistent_cough OR affirms_persistent_cough) THEN true WHEN mentions_persistent_cough THEN false ELSE NULL END)) AS persistent_cough,
        -- dyspnea
        coalesce(dyspnea, (CASE WHEN (codes_in_dyspnea OR affirms_dyspnea) THEN true WHEN mentions_dyspnea THEN false ELSE NULL END)) AS dyspnea,
        -- chest_pain
        coalesce(chest_pain, (CASE WHEN (codes_in_chest_pain OR affirms_chest_pain) THEN true WHEN mentions_chest_pain THEN false ELSE NULL END)) AS chest_pain,
        -- hemoptysis
        coalesce(hemoptysis, (CASE WHEN (codes_in_hemoptysis OR affirms_hemoptysis) THEN true WHEN mentions_hemoptysis THEN false ELSE NULL END)) AS hemoptysis,
        -- limb_numbness
        coalesce(limb_numbness, (CASE WHEN (codes_in_limb_numbness OR affirms_limb_numbness) THEN true WHEN mentions_limb_numbness THEN false ELSE NULL END)) AS limb_numbness,
        -- limb_tingling
        coalesce(limb_tingling, (CASE WHEN (codes_in_limb_tingling OR affirms_limb_tingling) THEN true WHEN mentions_limb_tingling THEN false ELSE NULL END)) AS limb_tingling,
        -- limb_weakness
        coalesce(limb_weakness, (CASE WHEN (codes_in_limb_weakness OR affirms_limb_weakness) THEN true WHEN mentions_limb_weakness THEN false ELSE NULL END)) AS limb_weakness,
        -- bladder_bowel_dysfunction
        coalesce(bladder_bowel_dysfunction, (CASE WHEN (codes_in_bladder_bowel_dysfunction OR affirms_bladder_bowel_dysfunction) THEN true WHEN mentions_bladder_bowel_dysfunction THEN false ELSE NULL END)) AS bladder_bowel_dysfunction
    FROM inputs
    JOIN complaint_matches
        ON inputs.chief_complaint IS NOT DISTINCT FROM complaint_matches.chief_complaint
    JOIN code_matches
        ON inputs.dx_codes IS NOT DISTINCT FROM code_matches.dx_codes
),
previous AS (
    -- Each patient's presentations in order (encounter_date, encounter_id): a
    -- same-day visit with a larger encounter_id is later. The previous back-pain
    -- presentation is the last one before this row in that order (its date and
    -- pain_score ride along in a struct). Back-pain presentations with
    -- 0 <= days before this one <= 90 are counted up to and including this one.
    SELECT
        row_key, patient_id, encounter_date, encounter_id, back_pain, pain_score,
        last_value(CASE WHEN back_pain THEN {'encounter_date': encounter_date,
            'pain_score': pain_score} END IGNORE NULLS) OVER earlier AS previous_back_pain,
        sum(CASE WHEN back_pain THEN 1 ELSE 0 END) OVER so_far
            - coalesce(sum(CASE WHEN back_pain THEN 1 ELSE 0 END) OVER older_than_window, 0)
            AS n_back_pain_window
    FROM (SELECT row_key, patient_id, encounter_date, encounter_id, back_pain, pain_score FROM effective)
    WINDOW
        earlier AS (PARTITION BY patient_id ORDER BY encounter_date, encounter_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        so_far AS (PARTITION BY patient_id ORDER BY encounter_date, encounter_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        older_than_window AS (
            -- (a whole number of days off a DATE keeps the order key the date
            -- itself, so all three windows share one sort)
            PARTITION BY patient_id ORDER BY encounter_date
            RANGE BETWEEN UNBOUNDED PRECEDING AND 91 PRECEDING
        )
),
history AS (
    SELECT
        row_key, patient_id, encounter_date, encounter_id, back_pain, pain_score,
        encounter_date - previous_back_pain.encounter_date AS days_since_previous,
        previous_back_pain.pain_score AS previous_pain_score,
        n_back_pain_window
    FROM previous
),
episodes AS (
    -- Days since the index of the current back-pain episode: an index is a
    -- back-pain presentation with no earlier one in the 180 days before it.
    SELECT
        row_key,
        days_since_previous,
        previous_pain_score,
        n_back_pain_window,
        CASE WHEN back_pain THEN encounter_date - max(CASE
            WHEN back_pain AND NOT coalesce(days_since_previous <= 180, false)
            THEN encounter_date END
        ) OVER (PARTITION BY patient_id ORDER BY encounter_date, encounter_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) END AS episode_days
    FROM history
),
features AS (
    -- Derived features (red_flags.yml `features:`), on the rows with their history.
    SELECT
        *,
        ((pain_duration_days >= 28) OR coalesce((episode_days >= 28), false)) AS pain_persistent,
        (progressive_pain OR (coalesce((days_since_previous <= 90), false) AND ((pain_score - previous_pain_score) >= 2))) AS progressive,
        (n_back_pain_window >= 3) AS repeat_presentation,
        (age_years >= 40) AS age_40_plus,
        (age_years >= 50) AS age_50_plus,
        (pain_site = 'thoracic') AS thoracic_pain,
        ((CASE smoking_status WHEN 'former' THEN true WHEN 'current' THEN true WHEN 'never' THEN false END) OR codes_in_ever_smoked) AS ever_smoked,
        (limb_numbness OR limb_tingling OR limb_weakness OR bladder_bowel_dysfunction) AS neuro_symptom,
        ((CASE WHEN persistent_cough THEN 1 ELSE 0 END) + (CASE WHEN fatigue THEN 1 ELSE 0 END) + (CASE WHEN dyspnea THEN 1 ELSE 0 END) + (CASE WHEN chest_pain THEN 1 ELSE 0 END) + (CASE WHEN unexplained_weight_loss THEN 1 ELSE 0 END) + (CASE WHEN appetite_loss THEN 1 ELSE 0 END)) AS lung_symptom_count
    FROM effective JOIN episodes USING (row_key)
),
scored AS (
    -- Tier (first that matches; NULL counts as not present), score (sum of the
    -- weights of TRUE features) and completeness (share of the
    -- 17 fields not NULL).
    SELECT
        encounter_id,
        patient_id,
        encounter_date,
        age_years,
        back_pain,
        pain_site,
        prior_cancer,
        night_pain,
        rest_pain,
        progressive_pain,
        unexplained_weight_loss,
        fatigue,
        appetite_loss,
        fever,
        persistent_cough,
        dyspnea,
        chest_pain,
        hemoptysis,
        limb_numbness,
        limb_tingling,
        limb_weakness,
        bladder_bowel_dysfunction,
        pain_persistent,
        progressive,
        repeat_presentation,
        age_40_plus,
        age_50_plus,
        thoracic_pain,
        ever_smoked,
        neuro_symptom,
        lung_symptom_count,
        (CASE WHEN (NOT coalesce(back_pain, false)) THEN 'not_back_pain' WHEN (bladder_bowel_dysfunction OR limb_weakness OR (neuro_symptom AND prior_cancer)) THEN 'urgent' WHEN (prior_cancer OR (hemoptysis AND age_40_plus) OR (age_40_plus AND ((lung_symptom_count >= 2) OR (ever_smoked AND (lung_symptom_count >= 1)))) OR (age_50_plus AND unexplained_weight_loss)) THEN 'high' WHEN (night_pain OR rest_pain OR progressive OR thoracic_pain OR unexplained_weight_loss OR hemoptysis OR neuro_symptom OR fever OR repeat_presentation OR (pain_persistent AND age_50_plus)) THEN 'moderate' ELSE 'low' END) AS tier,
        CAST(((CASE WHEN prior_cancer THEN 4 ELSE 0 END) + (CASE WHEN hemoptysis THEN 3 ELSE 0 END) + (CASE WHEN bladder_bowel_dysfunction THEN 3 ELSE 0 END) + (CASE WHEN limb_weakness THEN 3 ELSE 0 END) + (CASE WHEN unexplained_weight_loss THEN 2 ELSE 0 END) + (CASE WHEN night_pain THEN 1 ELSE 0 END) + (CASE WHEN rest_pain THEN 1 ELSE 0 END) + (CASE WHEN progressive THEN 1 ELSE 0 END) + (CASE WHEN thoracic_pain THEN 1 ELSE 0 END) + (CASE WHEN pain_persistent THEN 1 ELSE 0 END) + (CASE WHEN age_50_plus THEN 1 ELSE 0 END) + (CASE WHEN ever_smoked THEN 1 ELSE 0 END) + (CASE WHEN persistent_cough THEN 1 ELSE 0 END) + (CASE WHEN dyspnea THEN 1 ELSE 0 END) + (CASE WHEN chest_pain THEN 1 ELSE 0 END) + (CASE WHEN fatigue THEN 1 ELSE 0 END) + (CASE WHEN appetite_loss THEN 1 ELSE 0 END) + (CASE WHEN fever THEN 1 ELSE 0 END) + (CASE WHEN limb_numbness THEN 1 ELSE 0 END) + (CASE WHEN limb_tingling THEN 1 ELSE 0 END) + (CASE WHEN repeat_presentation THEN 1 ELSE 0 END)) AS INTEGER) AS score,
        CAST((CAST(back_pain IS NOT NULL AS INTEGER) + CAST(prior_cancer IS NOT NULL AS INTEGER) + CAST(night_pain IS NOT NULL AS INTEGER) + CAST(rest_pain IS NOT NULL AS INTEGER) + CAST(progressive_pain IS NOT NULL AS INTEGER) + CAST(unexplained_weight_loss IS NOT NULL AS INTEGER) + CAST(fatigue IS NOT NULL AS INTEGER) + CAST(appetite_loss IS NOT NULL AS INTEGER) + CAST(fever IS NOT NULL AS INTEGER) + CAST(persistent_cough IS NOT NULL AS INTEGER) + CAST(dyspnea IS NOT NULL AS INTEGER) + CAST(chest_pain IS NOT NULL AS INTEGER) + CAST(hemoptysis IS NOT NULL AS INTEGER) + CAST(limb_numbness IS NOT NULL AS INTEGER) + CAST(limb_tingling IS NOT NULL AS INTEGER) + CAST(limb_weakness IS NOT NULL AS INTEGER) + CAST(bladder_bowel_dysfunction IS NOT NULL AS INTEGER)) AS DOUBLE) / 17 AS completeness,
        '6176f968341d4650' AS rules_version
    FROM features
)
SELECT
    CAST(encounter_id AS VARCHAR) AS encounter_id,
    CAST(patient_id AS VARCHAR) AS patient_id,
    CAST(encounter_date AS DATE) AS encounter_date,
    CAST(age_years AS INTEGER) AS age_years,
    CAST(back_pain AS BOOLEAN) AS back_pain,
    CAST(pain_site AS VARCHAR) AS pain_site,
    CAST(prior_cancer AS BOOLEAN) AS prior_cancer,
    CAST(night_pain AS BOOLEAN) AS night_pain,
    CAST(rest_pain AS BOOLEAN) AS rest_pain,
    CAST(progressive_pain AS BOOLEAN) AS progressive_pain,
    CAST(unexplained_weight_loss AS BOOLEAN) AS unexplained_weight_loss,
    CAST(fatigue AS BOOLEAN) AS fatigue,
    CAST(appetite_loss AS BOOLEAN) AS appetite_loss,
    CAST(fever AS BOOLEAN) AS fever,
    CAST(persistent_cough AS BOOLEAN) AS persistent_cough,
    CAST(dyspnea AS BOOLEAN) AS dyspnea,
    CAST(chest_pain AS BOOLEAN) AS chest_pain,
    CAST(hemoptysis AS BOOLEAN) AS hemoptysis,
    CAST(limb_numbness AS BOOLEAN) AS limb_numbness,
    CAST(limb_tingling AS BOOLEAN) AS limb_tingling,
    CAST(limb_weakness AS BOOLEAN) AS limb_weakness,
    CAST(bladder_bowel_dysfunction AS BOOLEAN) AS bladder_bowel_dysfunction,
    CAST(pain_persistent AS BOOLEAN) AS pain_persistent,
    CAST(progressive AS BOOLEAN) AS progressive,
    CAST(repeat_presentation AS BOOLEAN) AS repeat_presentation,
    CAST(age_40_plus AS BOOLEAN) AS age_40_plus,
    CAST(age_50_plus AS BOOLEAN) AS age_50_plus,
    CAST(thoracic_pain AS BOOLEAN) AS thoracic_pain,
    CAST(ever_smoked AS BOOLEAN) AS ever_smoked,
    CAST(neuro_symptom AS BOOLEAN) AS neuro_symptom,
    CAST(lung_symptom_count AS INTEGER) AS lung_symptom_count,
    CAST(tier AS VARCHAR) AS tier,
    CAST(score AS INTEGER) AS score,
    CAST(completeness AS DOUBLE) AS completeness,
    CAST(rules_version AS VARCHAR) AS rules_version
FROM scored
ORDER BY patient_id, encounter_date, encounter_id
