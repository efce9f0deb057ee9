"""Scoring: output shape, rendered SQL, rules as data, text normalisation, warehouse, CLI."""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from pipelines.errors import UserError
from pipelines.scoring import normalise
from pipelines.scoring.engines import score_frame
from pipelines.scoring.jobs import score_warehouse
from pipelines.scoring.rules import load_rules
from pipelines.warehouse import create_schemas
from tests.support import ROOT, RULES_PATH, SCHEMAS_DIR
from tests.support.scoring import intake_frame

RULES = load_rules()

# The columns of features.presentation_flags, written out by hand.
INTERFACE_COLUMNS = [
    "encounter_id",
    "patient_id",
    "encounter_date",
    "age_years",
    "back_pain",
    "pain_site",
    "prior_cancer",
    "night_pain",
    "rest_pain",
    "progressive_pain",
    "unexplained_weight_loss",
    "fatigue",
    "appetite_loss",
    "fever",
    "persistent_cough",
    "dyspnea",
    "chest_pain",
    "hemoptysis",
    "limb_numbness",
    "limb_tingling",
    "limb_weakness",
    "bladder_bowel_dysfunction",
    "pain_persistent",
    "progressive",
    "repeat_presentation",
    "age_40_plus",
    "age_50_plus",
    "age_70_plus",
    "thoracic_pain",
    "strain_pain",
    "spinal_tenderness",
    "known_cancer",
    "suspected_cancer",
    "ever_smoked",
    "neuro_symptom",
    "lung_symptom_count",
    "metastasis_pain",
    "complicated",
    "tier",
    "score",
    "completeness",
    "rules_version",
]


def test_output_columns_are_the_interface():
    assert RULES.output_columns == INTERFACE_COLUMNS


def test_rules_version_is_the_hash_of_the_rule_files():
    """The rule file, the cue lexicon and every value-set file (in name order), by name
    and bytes."""
    digest = hashlib.sha256()
    lexicon = SCHEMAS_DIR / "context_lexicon.csv"
    for path in [RULES_PATH, lexicon, *sorted((SCHEMAS_DIR / "value_sets").glob("*.csv"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    assert RULES.version == digest.hexdigest()[:16]


def test_every_rule_has_evidence():
    raw = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    entries = raw["symptoms"] + raw["features"]
    entries += [raw[k] for k in ("pain_site", "history", "tiers", "score", "completeness")]
    assert all(str(e.get("evidence", "")).strip() for e in entries)


# ---------------------------------------------------------------- rules as data
def _copy_rules(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    edit(raw)
    path = tmp_path / "red_flags.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


ROW = {
    "encounter_id": "E1",
    "patient_id": "P1",
    "encounter_date": "2024-01-10",
    "sex": "F",
    "age_years": 55,
    "back_pain": True,
    "prior_cancer": True,
    "pain_duration_days": 21,
}


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_changing_a_weight_changes_the_score(tmp_path: Path, engine: str):
    # Default: known_cancer 4 + age_50_plus 1 = 5.
    assert score_frame(intake_frame([ROW]), engine, RULES).loc[0, "score"] == 5

    def edit(raw: dict) -> None:
        raw["score"]["weights"]["known_cancer"] = 10

    rules = load_rules(_copy_rules(tmp_path, edit))
    assert score_frame(intake_frame([ROW]), engine, rules).loc[0, "score"] == 11
    assert rules.version != RULES.version


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_changing_thresholds_changes_features_and_tier(tmp_path: Path, engine: str):
    row = {**ROW, "prior_cancer": False}
    before = score_frame(intake_frame([row]), engine, RULES).iloc[0]
    assert (before["pain_persistent"], before["age_50_plus"], before["tier"]) == (
        False,
        True,
        "low",
    )

    def edit(raw: dict) -> None:
        for f in raw["features"]:
            if f["name"] == "pain_persistent":
                f["rule"]["any"][0]["gte"][1] = 21
            if f["name"] == "age_50_plus":
                f["rule"]["gte"][1] = 60

    after = score_frame(intake_frame([row]), engine, load_rules(_copy_rules(tmp_path, edit))).iloc[
        0
    ]
    # pain_persistent now TRUE (21 >= 21) but age_50_plus FALSE (55 < 60): still low, score 1.
    assert (after["pain_persistent"], after["age_50_plus"], after["tier"], after["score"]) == (
        True,
        False,
        "low",
        1,
    )


def test_a_new_phrase_in_the_rules_is_matched(tmp_path: Path):
    row = {**ROW, "prior_cancer": None, "chief_complaint": "back pain and night sweats"}

    def edit(raw: dict) -> None:
        raw["phrases"]["fever"].append("night sweats")

    for engine in ("duckdb", "pandas"):
        assert pd.isna(score_frame(intake_frame([row]), engine, RULES).loc[0, "fever"])
        rules = load_rules(_copy_rules(tmp_path, edit))
        assert score_frame(intake_frame([row]), engine, rules).loc[0, "fever"]


def test_bad_rules_name_the_file_and_rule(tmp_path: Path):
    def edit(raw: dict) -> None:
        raw["features"][0]["rule"] = {"greater": ["pain_score", 3]}

    path = _copy_rules(tmp_path, edit)
    with pytest.raises(
        UserError,
        match=r"red_flags.yml: invalid rules: feature pain_persistent: "
        r"unknown predicate 'greater'",
    ):
        load_rules(path)


def test_unknown_value_set_is_reported(tmp_path: Path):
    def edit(raw: dict) -> None:
        raw["symptoms"][2]["codes"] = "no_such_set"

    with pytest.raises(UserError, match="no value set named 'no_such_set'"):
        load_rules(_copy_rules(tmp_path, edit))


# ---------------------------------------------------------------- normalisation
def test_codes_are_normalised_alike_in_both_engines():
    codes = {"m54.5; r05": "M545;R05", " Z87.891 ;c34.1": "Z87891;C341", "R0\u00e42": "R0?2"}
    by_pandas = normalise.codes_pandas(pd.Series(list(codes), dtype="string[pyarrow]")).tolist()
    con = duckdb.connect()
    by_sql = [
        con.execute(f"SELECT {normalise.codes_sql()} FROM (SELECT ? AS dx_codes)", [c]).fetchone()[
            0
        ]
        for c in codes
    ]
    assert by_pandas == by_sql == list(codes.values())


# ---------------------------------------------------------------- warehouse
def _warehouse_with_intake(path: Path, rows: list[dict]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    create_schemas(con)
    frame = intake_frame(rows)
    frame["source_file"], frame["source_row"], frame["run_id"] = "intake.csv", 2, "r1"
    con.register("frame", frame)
    con.execute("INSERT INTO staging.intake SELECT * FROM frame")
    return con


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_score_warehouse_writes_features_and_ops(tmp_path: Path, engine: str):
    rows = [
        {**ROW},
        {
            **ROW,
            "encounter_id": "E2",
            "encounter_date": "2024-02-01",
            "prior_cancer": None,
            "chief_complaint": "cough",
        },
    ]
    con = _warehouse_with_intake(tmp_path / "w.duckdb", rows)
    assert score_warehouse(con, engine) == 2
    columns = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'features' AND table_name = 'presentation_flags' "
        "ORDER BY ordinal_position"
    ).fetchall()
    assert [c for c, _ in columns] == INTERFACE_COLUMNS
    types = dict(columns)
    assert (
        types["encounter_date"],
        types["age_years"],
        types["back_pain"],
        types["tier"],
        types["score"],
        types["completeness"],
    ) == ("DATE", "INTEGER", "BOOLEAN", "VARCHAR", "INTEGER", "DOUBLE")
    got = con.execute(
        "SELECT encounter_id, tier, score FROM features.presentation_flags ORDER BY encounter_id"
    ).fetchall()
    # E1: prior_cancer -> known_cancer -> high, 4 + age_50_plus 1. E2: back_pain TRUE
    # (structured), cough, episode began 22 days before (< 28), duration 21; its own
    # prior_cancer is NULL but E1's TRUE carries forward: known_cancer -> high,
    # 4 + age_50 1 + cough 1.
    assert got == [("E1", "high", 5), ("E2", "high", 6)]
    assert con.execute("SELECT rules_version FROM ops.rules_versions").fetchall() == [
        (RULES.version,)
    ]
    assert score_warehouse(con, engine) == 2  # a rerun replaces, never appends
    assert con.execute("SELECT count(*) FROM ops.rules_versions").fetchone()[0] == 1


# ---------------------------------------------------------------- CLI
INTAKE_CSV = """\
encounter_id,patient_id,encounter_date,age_years,sex,chief_complaint,dx_codes,back_pain
E1,P1,2024-01-02,55,F,"back pain, denies weight loss",,
E2,P2,2024-02-03,33,M,cough,,
E3,P1,2024-03-04,62,F,low back pain,R04.2,true
"""


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_score_command_csv_and_parquet(tmp_path: Path):
    (tmp_path / "intake.csv").write_text(INTAKE_CSV, encoding="utf-8")
    result = _cli("score", str(tmp_path / "intake.csv"), "--out", str(tmp_path / "out.csv"))
    assert result.returncode == 0, result.stderr
    with (tmp_path / "out.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == INTERFACE_COLUMNS
    e1 = dict(zip(INTERFACE_COLUMNS, rows[1], strict=True))
    # E1: back pain from text, weight loss negated -> false, NULLs empty, low, age_50_plus 1.
    assert (
        e1["encounter_id"],
        e1["back_pain"],
        e1["unexplained_weight_loss"],
        e1["fever"],
        e1["tier"],
        e1["score"],
    ) == ("E1", "true", "false", "", "low", "1")
    parquet = tmp_path / "out.parquet"
    result = _cli(
        "score", str(tmp_path / "intake.csv"), "--out", str(parquet), "--engine", "pandas"
    )
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(parquet).set_index("encounter_id")
    # E3: hemoptysis code at 62 -> high; 3 + age_50 1 + pain_persistent (62 days after E1) 1.
    assert (frame.loc["E3", "tier"], frame.loc["E3", "score"]) == ("high", 5)
    assert frame.loc["E2", "tier"] == "not_back_pain"


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_score_file_reads_a_diagnoses_file(tmp_path: Path, engine: str):
    """`score --diagnoses`: a cancer diagnosed on or before a presentation's date, in
    ICD-10-CM (CSV) or SNOMED through the crosswalk (Parquet)."""
    from pipelines.scoring.jobs import score_file

    (tmp_path / "intake.csv").write_text(INTAKE_CSV, encoding="utf-8")
    icd = tmp_path / "diagnoses.csv"
    icd.write_text(
        "patient_id,diagnosis_date,code,code_system\nP1,2024-02-01,C34.90,ICD10CM\n",
        encoding="utf-8",
    )
    snomed = tmp_path / "diagnoses.parquet"
    pd.DataFrame(
        {
            "patient_id": ["P1"],
            "diagnosis_date": [pd.Timestamp("2024-03-04")],
            "code": ["93880001"],
            "code_system": ["SNOMED"],
        }
    ).to_parquet(snomed)
    for diagnoses in (icd, snomed):
        out = tmp_path / "out.parquet"
        assert score_file(tmp_path / "intake.csv", out, engine, diagnoses=diagnoses) == 3
        frame = pd.read_parquet(out).set_index("encounter_id")
        # E1 (2024-01-02) is before either diagnosis: known_cancer NULL, low, age_50 1.
        # E3 (2024-03-04): known_cancer 4 + hemoptysis 3 + age_50 1 + persistent 1 = 9.
        assert pd.isna(frame.loc["E1", "known_cancer"])
        assert (frame.loc["E1", "tier"], frame.loc["E1", "score"]) == ("low", 1)
        assert frame.loc["E3", "known_cancer"]
        assert (frame.loc["E3", "tier"], frame.loc["E3", "score"]) == ("high", 9)


def test_a_bad_diagnoses_file_is_one_line(tmp_path: Path):
    (tmp_path / "intake.csv").write_text(INTAKE_CSV, encoding="utf-8")
    bad = tmp_path / "dx.csv"
    bad.write_text(
        "patient_id,diagnosis_date,code,code_system\n"
        "P1,2024-02-01,C34.90,ICD10CM\nP1,2024-02-01,162.9,ICD9CM\n",
        encoding="utf-8",
    )
    args = ("score", str(tmp_path / "intake.csv"), "--out", str(tmp_path / "o.csv"))
    result = _cli(*args, "--diagnoses", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"redflags: error: {bad}, line 3, column code_system: 'ICD9CM' is not one of "
        "ICD10CM, SNOMED; correct the value and rerun"
    )


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_score_warehouse_reads_staging_diagnoses(tmp_path: Path, engine: str):
    con = _warehouse_with_intake(tmp_path / "w.duckdb", [{**ROW, "prior_cancer": False}])
    con.execute(
        "INSERT INTO staging.diagnoses VALUES "
        "('P1', DATE '2024-01-01', 'C34.90', 'ICD10CM', 'diagnoses.csv', 2, 'r1')"
    )
    assert score_warehouse(con, engine) == 1
    # prior_cancer FALSE, but a lung cancer diagnosed before: known_cancer -> high, 4 + age 1.
    got = con.execute(
        "SELECT prior_cancer, known_cancer, tier, score FROM features.presentation_flags"
    ).fetchall()
    assert got == [(False, True, "high", 5)]


@pytest.mark.parametrize("own_column", ["", ", 0 AS file_row_number"])
def test_score_file_keys_the_rows_of_a_parquet_intake(tmp_path: Path, own_column: str):
    """A Parquet intake's rows keep their order and keys, also when the file has a column
    named like the reader's row number (one value on every row here)."""
    from pipelines.scoring.jobs import score_file

    (tmp_path / "intake.csv").write_text(INTAKE_CSV, encoding="utf-8")
    intake = tmp_path / "intake.parquet"
    duckdb.execute(
        f"COPY (SELECT *{own_column} FROM read_csv('{tmp_path / 'intake.csv'}')) TO '{intake}'"
    )
    out = tmp_path / "out.parquet"
    assert score_file(intake, out) == 3
    frame = pd.read_parquet(out)
    assert list(frame["encounter_id"]) == ["E1", "E3", "E2"]
    e3 = frame.set_index("encounter_id").loc["E3"]
    # E3: 62 days after E1's back pain (pain_persistent); hemoptysis code at 62 -> high, 5.
    assert (e3["pain_persistent"], e3["tier"], e3["score"]) == (True, "high", 5)


def test_score_file_connection_reads_no_file_once_the_intake_is_loaded(tmp_path: Path):
    """After the intake is loaded, SQL on the scoring connection can read no file."""
    from pipelines.scoring.jobs import load_intake_file

    (tmp_path / "intake.csv").write_text(INTAKE_CSV, encoding="utf-8")
    con = duckdb.connect()
    try:
        assert load_intake_file(con, tmp_path / "intake.csv")[0] == 3
        assert con.execute("SELECT count(*) FROM staging.intake").fetchone()[0] == 3
        with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
            con.execute("SELECT content FROM read_text('/etc/passwd')").fetchall()
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"COPY (SELECT 1) TO '{tmp_path / 'leak.csv'}'")
        assert not (tmp_path / "leak.csv").exists()
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["missing.csv", "--out", "o.csv"], 2, "missing.csv: no such file"),
        (["intake.csv", "--out", "o.txt"], 2, "o.txt: the output must end in .csv or .parquet"),
        (["intake.csv", "--out", "o.csv", "--engine", "spark"], 2, "'spark' is not one of"),
        (["bad.csv", "--out", "o.csv"], 1, "bad.csv, line 3, column age_years: 'old'"),
        (["noid.csv", "--out", "o.csv"], 1, "missing required column(s) encounter_id"),
    ],
)
def test_score_command_errors_are_one_line(
    tmp_path: Path, args: list[str], code: int, message: str
):
    (tmp_path / "intake.csv").write_text(INTAKE_CSV, encoding="utf-8")
    (tmp_path / "bad.csv").write_text(INTAKE_CSV.replace(",33,", ",old,"), encoding="utf-8")
    (tmp_path / "noid.csv").write_text(INTAKE_CSV.replace("encounter_id,", "id,"), "utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "score", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("redflags: error:")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_score_file_caps_ages_and_writes_no_formula(tmp_path: Path, kind: str):
    from pipelines.scoring.jobs import score_file

    text = (
        INTAKE_CSV.replace("E1,P1,2024-01-02,55,", "=cmd|' /C calc'!A0,P1,2024-01-02,104.0,")
        .replace(",33,", ",1.04e2,")
        .replace(",62,", ",+97,")
    )
    intake = tmp_path / "intake.csv"
    intake.write_text(text, encoding="utf-8")
    if kind == "parquet":  # a typed age column: 104 as an integer
        typed = tmp_path / "intake.parquet"
        duckdb.execute(
            f"COPY (SELECT * REPLACE (CAST(CAST(age_years AS DOUBLE) AS INTEGER) AS age_years) "
            f"FROM read_csv('{intake}', all_varchar = true)) TO '{typed}'"
        )
        intake = typed
    out = tmp_path / "out.csv"
    assert score_file(intake, out) == 3
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert frame["age_years"].tolist() == ["90", "90", "90"]
    assert frame["encounter_id"].tolist() == ["'=cmd|' /C calc'!A0", "E3", "E2"]
    # Numbers keep their sign: no numeric column is quoted.
    assert not frame["score"].str.startswith("'").any()


REQUIRED = "a value is required; fill it in or drop the row"
NOT_AN_INTEGER = "is not a valid integer; correct the value and rerun"


@pytest.mark.parametrize(
    ("edits", "kind", "message"),
    [
        ([("E2,P2,", "E2,,")], "csv", f"line 3, column patient_id: {REQUIRED}"),
        # The first bad line wins, whichever column it is in.
        (
            [(",62,", ",old,"), ("E2,P2,", "E2,,")],
            "csv",
            f"line 3, column patient_id: {REQUIRED}",
        ),
        ([(",62,", ",old,")], "csv", f"line 4, column age_years: 'old' {NOT_AN_INTEGER}"),
        # A typed (Parquet) column can still lack a required value: E3 is the third row.
        ([("E3,P1,", "E3,,")], "parquet", f"line 4, column patient_id: {REQUIRED}"),
    ],
)
def test_score_file_names_the_first_bad_value(
    tmp_path: Path, edits: list[tuple[str, str]], kind: str, message: str
):
    from pipelines.scoring.jobs import score_file

    text = INTAKE_CSV
    for old, new in edits:
        text = text.replace(old, new)
    intake = tmp_path / "intake.csv"
    intake.write_text(text, encoding="utf-8")
    if kind == "parquet":
        typed = tmp_path / "intake.parquet"
        duckdb.execute(f"COPY (SELECT * FROM read_csv('{intake}')) TO '{typed}'")
        intake = typed
    with pytest.raises(UserError) as raised:
        score_file(intake, tmp_path / "out.parquet")
    assert str(raised.value) == f"{intake}, {message}"


def test_sample_data_gives_every_tier(tmp_path: Path):
    """data/sample/ (written by `redflags generate`) exercises every tier."""
    from pipelines.scoring.jobs import score_file
    from tests.support import SAMPLE_DIR

    out = tmp_path / "scored.parquet"
    score_file(SAMPLE_DIR / "intake.csv", out)
    tiers = set(pd.read_parquet(out)["tier"])
    assert tiers == {"emergency", "urgent", "high", "moderate", "low", "not_back_pain"}


def test_flow_task_scores_staging_into_features(tmp_path: Path):
    """The Prefect task's function: staging.intake -> features.presentation_flags."""
    from pipelines.flows.prefect_env import configure_prefect

    configure_prefect()
    from pipelines.flows.run import score_presentations

    warehouse = tmp_path / "w.duckdb"
    con = _warehouse_with_intake(warehouse, [{**ROW}])
    con.close()
    assert score_presentations.fn(str(warehouse), "pandas") == 1
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT tier, score FROM features.presentation_flags").fetchall() == [
        ("high", 5)
    ]
