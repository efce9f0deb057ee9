"""The synthetic generator: deterministic, in contract, and realistic where later stages need it.

The distribution checks run on 5,000 generated patients and use tolerances about
three standard errors wide; the expected values are worked out by hand from the
rates in pipelines/synth/profile.yml (shown next to each).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pipelines.contracts import load_contract
from pipelines.errors import UserError
from pipelines.synth import generate
from pipelines.synth.profile import PROFILE_PATH, ProfileError, load_profile
from pipelines.value_sets import load_value_sets, matches
from tests.support import SAMPLE_DIR

TABLES = ("intake", "referrals", "diagnoses", "patients")
START, END = date(2023, 1, 1), date(2025, 12, 31)
SYMPTOMS = [c.name for c in load_contract("intake").columns if c.symptom]
# Back-pain phrases of the rules' text table, and the negation cues.
BACK_PAIN_PHRASES = (
    "back pain",
    "backache",
    "back ache",
    "lumbago",
    "thoracic pain",
    "spine pain",
    "spinal pain",
)
RED_FLAG_PHRASES = (
    "night pain",
    "pain at night",
    "worse at night",
    "wakes at night",
    "pain at rest",
    "rest pain",
    "progressive",
    "worsening",
    "getting worse",
    "weight loss",
    "losing weight",
    "lost weight",
    "fatigue",
    "tiredness",
    "loss of appetite",
    "appetite loss",
    "poor appetite",
    "cough",
    "shortness of breath",
    "breathlessness",
    "short of breath",
    "chest pain",
    "hemoptysis",
    "haemoptysis",
    "numb",
    "tingling",
    "pins and needles",
    "weakness",
    "weak legs",
    "incontinence",
    "urinary retention",
    "bladder dysfunction",
    "bowel dysfunction",
    "fever",
    "febrile",
    "history of cancer",
    "previous cancer",
    "prior cancer",
)
# Symptoms that a code can set (the rules' codes that set symptoms).
CODED_SYMPTOMS = [s for s in SYMPTOMS if s not in ("night_pain", "rest_pain", "progressive_pain")]
NEGATION_CUES = ("no ", "not ", "denies ", "denied ", "without ", "negative for ")


def read(directory: Path, table: str) -> pd.DataFrame:
    """A generated CSV as text, NULL (empty field) as NA."""
    return pd.read_csv(directory / f"{table}.csv", dtype=str, keep_default_na=False, na_values=[""])


def positive_clauses(text: pd.Series, phrases: tuple[str, ...]) -> pd.Series:
    """Whether some comma-separated clause names a phrase without a negation cue."""
    clauses = text.fillna("").str.lower().str.split(", ").explode()
    named = clauses.str.contains("|".join(phrases), regex=True)
    negated = clauses.str.startswith(NEGATION_CUES)
    return (named & ~negated).groupby(level=0).any().reindex(text.index, fill_value=False)


def any_code_in(codes: pd.Series, value_sets: list[str]) -> pd.Series:
    exploded = codes.fillna("").str.split(";").explode()
    unique = exploded[exploded != ""].unique()
    hit = {c for c in unique if any(matches(c, v) for v in value_sets)}
    return exploded.isin(hit).groupby(level=0).any().reindex(codes.index, fill_value=False)


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    out = tmp_path_factory.mktemp("synth5000")
    generate(out, patients=5000, seed=11)
    frames = {t: read(out, t) for t in TABLES}
    intake = frames["intake"]
    structured = intake["back_pain"]
    coded = any_code_in(intake["dx_codes"], ["back_pain"])
    texted = positive_clauses(intake["chief_complaint"], BACK_PAIN_PHRASES)
    intake["is_back_pain"] = structured.eq("true") | (structured.isna() & (coded | texted))
    flag_columns = [*SYMPTOMS, "prior_cancer"]
    intake["has_red_flag"] = (
        intake[flag_columns].eq("true").any(axis=1)
        | any_code_in(intake["dx_codes"], [*CODED_SYMPTOMS, "prior_cancer"])
        | positive_clauses(intake["chief_complaint"], RED_FLAG_PHRASES)
    )
    intake["date"] = pd.to_datetime(intake["encounter_date"])
    diagnoses = frames["diagnoses"]
    cancer = diagnoses["code"].map(
        lambda c: matches(c, "lung_cancer") or matches(c, "bone_metastasis")
    )
    frames["cancer_diagnoses"] = diagnoses[cancer]
    return frames


# --- determinism -------------------------------------------------------------------


def file_bytes(directory: Path, ext: str = "csv") -> dict[str, bytes]:
    return {t: (directory / f"{t}.{ext}").read_bytes() for t in TABLES}


def test_same_seed_gives_identical_files_and_another_seed_different(tmp_path: Path):
    generate(tmp_path / "a", patients=400, seed=3)
    generate(tmp_path / "b", patients=400, seed=3)
    generate(tmp_path / "c", patients=400, seed=4)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    for table in ("intake", "referrals"):
        assert file_bytes(tmp_path / "a")[table] != file_bytes(tmp_path / "c")[table]


def test_chunk_boundaries_keep_determinism_and_ids(tmp_path: Path):
    # 250 patients in chunks of 100: three chunks, the last one partial.
    generate(tmp_path / "a", patients=250, seed=5, chunk_size=100)
    generate(tmp_path / "b", patients=250, seed=5, chunk_size=100)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    intake = read(tmp_path / "a", "intake")
    n = len(intake)
    assert intake["encounter_id"].tolist() == [f"E{i:08d}" for i in range(1, n + 1)]
    assert sorted(intake["patient_id"].unique()) == [f"P{i:07d}" for i in range(1, 251)]
    referrals = read(tmp_path / "a", "referrals")
    assert referrals["referral_id"].tolist() == [f"R{i:08d}" for i in range(1, len(referrals) + 1)]
    # Rows stay grouped by patient across the chunk boundaries.
    assert intake["patient_id"].is_monotonic_increasing


def test_parquet_holds_the_same_rows_as_csv(tmp_path: Path):
    generate(tmp_path / "csv", patients=300, seed=9)
    generate(tmp_path / "pq", patients=300, seed=9, fmt="parquet")
    generate(tmp_path / "pq2", patients=300, seed=9, fmt="parquet")
    assert file_bytes(tmp_path / "pq", "parquet") == file_bytes(tmp_path / "pq2", "parquet")
    for table in TABLES:
        from_parquet = pq.read_table(tmp_path / "pq" / f"{table}.parquet")
        assert from_parquet.column_names == load_contract(table).names
        from_csv = pacsv.read_csv(
            tmp_path / "csv" / f"{table}.csv",
            convert_options=pacsv.ConvertOptions(
                column_types=from_parquet.schema, strings_can_be_null=True
            ),
        )
        assert from_csv.equals(from_parquet), table


def test_sample_data_is_what_the_generator_writes(tmp_path: Path):
    """data/sample/ is regenerated with the command in data/sample/README.md."""
    readme = (SAMPLE_DIR / "README.md").read_text(encoding="utf-8")
    command = "redflags generate --patients 2000 --seed 7 --out data/sample"
    assert command in readme
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "generate", "--patients", "2000"]
        + ["--seed", "7", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("generated 2,000 patients")
    assert file_bytes(tmp_path) == file_bytes(SAMPLE_DIR)


# --- contract conformance ------------------------------------------------------------


def test_files_follow_the_contracts(population: dict[str, pd.DataFrame]):
    for table in TABLES:
        contract = load_contract(table)
        frame = population[table][[c for c in population[table] if c in contract]]
        assert list(frame.columns) == contract.names
        for column in contract.columns:
            values = frame[column.name]
            if column.required:
                assert values.notna().all(), (table, column.name)
            present = values.dropna()
            if column.allowed:
                assert set(present) <= set(column.allowed), (table, column.name)
            if column.type == "boolean":
                assert set(present) <= {"true", "false"}, (table, column.name)
            if column.type == "integer":
                numbers = present.astype(int)
                if column.min is not None:
                    assert numbers.min() >= column.min, (table, column.name)
                if column.max is not None:
                    assert numbers.max() <= column.max, (table, column.name)
            if column.type == "date":
                dates = pd.to_datetime(present, format="%Y-%m-%d")
                assert dates.min() >= pd.Timestamp(START), (table, column.name)
                assert dates.max() <= pd.Timestamp(END), (table, column.name)
            if column.unique:
                assert values.is_unique, (table, column.name)


def test_every_id_refers_to_an_intake_patient(population: dict[str, pd.DataFrame]):
    patients = set(population["intake"]["patient_id"])
    assert set(population["referrals"]["patient_id"]) <= patients
    assert set(population["diagnoses"]["patient_id"]) <= patients
    assert set(population["patients"]["patient_id"]) == patients
    assert population["intake"]["patient_id"].nunique() == 5000


def test_codes_come_from_the_value_sets(population: dict[str, pd.DataFrame]):
    conditions = {e.value_set for e in load_value_sets() if e.code_system == "ICD10CM"}
    codes = population["intake"]["dx_codes"].dropna().str.split(";").explode().unique()
    assert all(any(matches(c, v) for v in conditions) for c in codes)
    diagnoses = population["diagnoses"]
    assert set(diagnoses["code_system"]) == {"ICD10CM"}
    complicating = load_profile()["followup"]["complicating_conditions"]
    assert all(
        any(matches(c, v) for v in ["lung_cancer", "bone_metastasis", *complicating])
        for c in diagnoses["code"]
    )
    coded = {v for c in diagnoses["code"] for v in complicating if matches(c, v)}
    assert coded == set(complicating)
    assert diagnoses["code"].str.startswith("C34").any()
    assert (diagnoses["code"] == "C79.51").any()
    referrals = population["referrals"]
    with_code = referrals.dropna(subset=["code"])
    for row_type, set_prefix in (("imaging", "referral_imaging"), ("biopsy", "referral_biopsy")):
        of_type = with_code.loc[with_code["referral_type"] == row_type, "code"].unique()
        assert all(matches(c, set_prefix) for c in of_type)
    # Where both a code and a modality are given, they agree with the value sets.
    both = with_code.dropna(subset=["modality"])[["code", "modality"]].drop_duplicates()
    pairs = zip(both["code"], both["modality"], strict=True)
    assert all(matches(code, f"modality_{modality}") for code, modality in pairs)


def test_referrals_are_written_in_every_form(population: dict[str, pd.DataFrame]):
    referrals = population["referrals"]
    # the orders of the risk model; imaging of other regions is written without a code
    other_region = (
        referrals["code"].isna()
        & referrals["body_region"].eq("other")
        & referrals["modality"].isin(["xray", "ct", "mri"])
    )
    referrals = referrals[~other_region]
    code_only = referrals["code"].notna() & referrals["modality"].isna()
    no_code = referrals["code"].isna() & referrals["modality"].notna()
    full = referrals[["code", "modality", "body_region"]].notna().all(axis=1)
    # Profile representation: full 0.70, code only 0.15, no code 0.10, no region 0.05.
    assert 0.66 <= full.mean() <= 0.74
    assert 0.12 <= code_only.mean() <= 0.18
    assert 0.07 <= no_code.mean() <= 0.13


# --- distributions ---------------------------------------------------------------------


def test_about_70_percent_of_presentations_are_back_pain(population):
    # 0.875 of patients have back-pain visits, 0.80 of their visits are back pain.
    share = population["intake"]["is_back_pain"].mean()
    assert 0.67 <= share <= 0.73


def test_several_presentations_per_patient(population):
    per_patient = population["intake"].groupby("patient_id").size()
    # 1 + Poisson(2.5), a little more for patients with cancer: mean about 3.5.
    assert 3.3 <= per_patient.mean() <= 3.7
    assert (per_patient >= 3).mean() > 0.5


def test_malignancy_is_about_1_percent_of_back_pain_patients(population):
    intake, diagnoses = population["intake"], population["cancer_diagnoses"]
    back_pain_patients = set(intake.loc[intake["is_back_pain"], "patient_id"])
    with_cancer = set(diagnoses["patient_id"])
    assert with_cancer <= back_pain_patients
    # 0.95% drawn; those diagnosed after the end of the period are not recorded.
    assert 0.006 <= len(with_cancer) / len(back_pain_patients) <= 0.014


def test_red_flags_are_far_more_common_in_cancer_patients(population):
    intake = population["intake"]
    cancer = intake["patient_id"].isin(population["cancer_diagnoses"]["patient_id"])
    back = intake["is_back_pain"]
    rate_cancer = intake.loc[back & cancer, "has_red_flag"].mean()
    rate_other = intake.loc[back & ~cancer, "has_red_flag"].mean()
    assert rate_cancer > 2 * rate_other


def test_cancer_diagnoses_follow_a_red_flag(population):
    intake, diagnoses = population["intake"], population["cancer_diagnoses"]
    first_dx = diagnoses.assign(date=pd.to_datetime(diagnoses["diagnosis_date"]))
    first_dx = first_dx.groupby("patient_id")["date"].min()
    flagged = intake[intake["has_red_flag"]].groupby("patient_id")["date"].min()
    first_visit = intake.groupby("patient_id")["date"].min()
    # Every diagnosis comes after the patient's first presentation ...
    assert (first_dx > first_visit.reindex(first_dx.index)).all()
    # ... and, for nearly all, after a documented red flag (a flag can go undocumented).
    before = first_dx > flagged.reindex(first_dx.index)
    assert before.mean() >= 0.9


# Share of NULLs per field: structured rows (0.75) NULL at the field's rate, the
# other modes (0.25) always NULL: 0.25 + 0.75 * rate.
EXPECTED_NULL = {
    "night_pain": 0.25 + 0.75 * 0.20,  # 0.40
    "rest_pain": 0.25 + 0.75 * 0.30,  # 0.475
    "hemoptysis": 0.25 + 0.75 * 0.40,  # 0.55
    "limb_weakness": 0.25 + 0.75 * 0.20,  # 0.40
    "prior_cancer": 0.25 + 0.75 * 0.15,  # 0.3625
}


@pytest.mark.parametrize("column", sorted(EXPECTED_NULL))
def test_missingness_rate_per_field(population, column):
    share = population["intake"][column].isna().mean()
    assert abs(share - EXPECTED_NULL[column]) <= 0.02


def test_smoking_status_is_mostly_recorded(population):
    # 8% of presentations leave it NULL.
    assert abs(population["intake"]["smoking_status"].isna().mean() - 0.08) <= 0.015


def test_some_presentations_are_documented_only_in_text_or_codes(population):
    intake = population["intake"]
    booleans_null = intake[["back_pain", "prior_cancer", *SYMPTOMS]].isna().all(axis=1)
    text_only = booleans_null & intake["chief_complaint"].notna() & intake["dx_codes"].isna()
    codes_only = booleans_null & intake["chief_complaint"].isna() & intake["dx_codes"].notna()
    # Profile modes: text only 0.12, codes only 0.08 (a few structured rows look alike).
    assert 0.10 <= text_only.mean() <= 0.15
    assert 0.06 <= codes_only.mean() <= 0.10


def test_text_negates_absent_symptoms_and_never_present_ones(population):
    intake = population["intake"]
    text = intake["chief_complaint"].fillna("").str.lower()
    denied_weight = text.str.contains("denies weight loss|no weight loss")
    assert denied_weight.sum() > 10
    assert not intake.loc[denied_weight, "unexplained_weight_loss"].eq("true").any()
    denied_then_reported = text.str.contains(r"(?:denies|no) [a-z ]+, [a-z ]*night pain")
    assert denied_then_reported.any()
    mentioned_night = text.str.contains("night pain|pain at night|worse at night")
    negated_night = text.str.contains("no night pain|denies pain at night")
    assert not intake.loc[mentioned_night & ~negated_night, "night_pain"].eq("false").any()
    assert text.str.contains("without numbness").any()


def test_biopsies_mostly_follow_imaging(population):
    referrals = population["referrals"].assign(date=lambda d: pd.to_datetime(d["referral_date"]))
    imaging = referrals[referrals["referral_type"] == "imaging"]
    first_imaging = imaging.groupby("patient_id")["date"].min()
    biopsies = referrals[referrals["referral_type"] == "biopsy"]
    assert len(biopsies) >= 20
    after = biopsies["date"] >= first_imaging.reindex(biopsies["patient_id"]).to_numpy()
    assert after.mean() >= 0.85


def imaging_within(intake: pd.DataFrame, referrals: pd.DataFrame, days: int) -> pd.Series:
    """Whether each presentation has an imaging order 0..days days after it."""
    imaging = referrals.loc[referrals["referral_type"] == "imaging", ["patient_id"]].assign(
        ref=pd.to_datetime(referrals["referral_date"])
    )
    pairs = intake[["patient_id", "date"]].reset_index().merge(imaging, on="patient_id")
    delta = (pairs["ref"] - pairs["date"]).dt.days
    hit = pairs.loc[(delta >= 0) & (delta <= days), "index"].unique()
    return pd.Series(intake.index.isin(hit), index=intake.index)


def test_overuse_and_care_gaps_both_occur(population):
    intake, referrals = population["intake"], population["referrals"]
    adults = intake["age_years"].astype(int).between(18, 75)
    plain = intake["is_back_pain"] & ~intake["has_red_flag"] & adults
    overuse = plain & imaging_within(intake, referrals, 28)
    assert overuse.sum() >= 20
    emergency = intake["is_back_pain"] & (
        intake["bladder_bowel_dysfunction"].eq("true") | intake["limb_weakness"].eq("true")
    )
    assert emergency.sum() >= 10
    gap = emergency & ~imaging_within(intake, referrals, 1)
    imaged = emergency & imaging_within(intake, referrals, 1)
    assert gap.sum() >= 1 and imaged.sum() >= 1
    # Imaging follows risk: emergencies are imaged far more often than plain back pain.
    assert imaged.sum() / emergency.sum() > 3 * overuse.sum() / plain.sum()


# --- the profile ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  hemoptysis: [R04.2]", "  hemoptysis: [R05.9]", "R05.9 is not in value set hemoptysis"),
        ("{F: 0.54, M: 0.44", "{F: 0.64, M: 0.44", "patients.sex must sum to 1"),
        ("    spine_ct: [imaging, ct, spine]", "    spine_ct: [imaging, ct, pelvis]", "spine_ct"),
        ("  fever:                 ", "  feverish:              ", "symptoms must be"),
    ],
)
def test_a_profile_that_disagrees_with_the_schemas_is_refused(
    tmp_path: Path, old: str, new: str, message: str
):
    text = PROFILE_PATH.read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / "profile.yml"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ProfileError, match=message):
        load_profile(broken)


# The rules' text table, by feature, and its pain-site words.
CLINICAL_PHRASES = {
    "back_pain": BACK_PAIN_PHRASES,
    "night_pain": ("night pain", "pain at night", "worse at night", "wakes at night"),
    "rest_pain": ("pain at rest", "rest pain", "not relieved by rest", "unrelated to movement"),
    "progressive_pain": ("progressive", "worsening", "getting worse"),
    "unexplained_weight_loss": ("weight loss", "losing weight", "lost weight"),
    "fatigue": ("fatigue", "tiredness", "exhaustion"),
    "appetite_loss": ("loss of appetite", "appetite loss", "poor appetite"),
    "persistent_cough": ("cough",),
    "dyspnea": ("shortness of breath", "breathlessness", "dyspnea", "short of breath"),
    "chest_pain": ("chest pain",),
    "hemoptysis": ("hemoptysis", "haemoptysis", "coughing blood", "coughing up blood"),
    "limb_numbness": ("numbness", "numb"),
    "limb_tingling": ("tingling", "pins and needles"),
    "limb_weakness": (
        "leg weakness",
        "arm weakness",
        "weak legs",
        "weak arms",
        "legs feel weak",
        "foot drop",
        "difficulty walking",
    ),
    "bladder_bowel_dysfunction": (
        "incontinence",
        "urinary retention",
        "bladder dysfunction",
        "bowel dysfunction",
    ),
    "fever": ("fever", "febrile"),
    "prior_cancer": ("history of cancer", "previous cancer", "prior cancer"),
}
SITE_WORDS = {
    "thoracic": ("upper back", "mid back", "thoracic"),
    "lumbar": ("lower back", "low back", "lumbar"),
}


def features_named(phrase: str) -> set[str]:
    return {f for f, said in CLINICAL_PHRASES.items() if any(p in phrase for p in said)}


def test_profile_phrases_say_exactly_what_they_mean():
    """Each phrase names its own feature and no other, as the scorer will read it."""
    text = load_profile()["text"]
    for feature, said in text["symptoms"].items():
        for phrase in said["present"]:
            assert features_named(phrase) == {feature}, phrase
            assert not phrase.startswith(NEGATION_CUES), phrase
        for phrase in said["deny"]:
            assert features_named(phrase) == {feature}, phrase
            assert phrase.startswith(NEGATION_CUES), phrase
    for site, phrases in text["back_pain"].items():
        for phrase in phrases:
            assert features_named(phrase) == {"back_pain"}, phrase
            sites = {s for s, words in SITE_WORDS.items() if any(w in phrase for w in words)}
            assert sites == ({site} if site in SITE_WORDS else set()), phrase
    for phrase in text["other_complaints"]:
        assert features_named(phrase) == set(), phrase
    for phrase in text["deny_back_pain"]:
        assert features_named(phrase) == {"back_pain"} and phrase.startswith(NEGATION_CUES)


# --- the command -----------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "generate", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--patients", "0"], "--patients must be at least 1"),
        (["--start", "2025-01-01", "--end", "2024-01-01"], "is before --start"),
        (["--start", "2025-02-30"], "is not a date"),
        (["--format", "xlsx"], "'xlsx' is not one of 'csv', 'parquet'"),
    ],
)
def test_bad_arguments_are_one_clear_line(tmp_path: Path, args: list[str], message: str):
    result = run_cli("--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert not (tmp_path / "out" / "intake.csv").exists()


def test_unwritable_out_dir_is_one_clear_line(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    result = run_cli("--out", str(blocker / "sub"), "--patients", "5")
    assert result.returncode == 2
    assert "cannot write there" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_generate_rejects_bad_arguments_as_user_errors(tmp_path: Path):
    with pytest.raises(UserError, match="--seed must be 0 or more"):
        generate(tmp_path, patients=5, seed=-1)


def test_help_describes_every_option():
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--out", "--patients", "--seed", "--format", "--start", "--end"):
        assert option in result.stdout


def test_deaths_and_observation_periods_end_follow_up(population: dict[str, pd.DataFrame]):
    """Deaths come after a patient's last visit, more often with cancer; observation
    periods cover every visit; some end before the period does; other-region imaging."""
    intake, patients = population["intake"], population["patients"].set_index("patient_id")
    visits = intake.groupby("patient_id")["date"].agg(["min", "max"])
    died = pd.to_datetime(patients["death_date"]).dropna()
    assert 0.01 < len(died) / len(patients) < 0.05
    assert (died > visits.loc[died.index, "max"]).all()
    start = pd.to_datetime(patients["observation_start_date"])
    end = pd.to_datetime(patients["observation_end_date"])
    assert (start <= visits.loc[start.index, "min"]).all()
    ended = end.dropna()
    assert (ended >= visits.loc[ended.index, "max"]).all()
    assert (ended < pd.Timestamp(END)).mean() > 0.99  # ended, within the period
    assert 0.05 < (len(ended) - len(died)) / len(patients) < 0.15
    # the dead's observation ends at death
    assert (end.loc[died.index] == died).all()
    with_cancer = set(population["cancer_diagnoses"]["patient_id"])
    assert died.index.isin(list(with_cancer)).mean() > 0.1  # far above their 1% share
    other = population["referrals"]["body_region"].eq("other")
    assert 0.1 < other.mean() < 0.3
    assert population["referrals"]["referral_id"].is_unique
