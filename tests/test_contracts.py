"""The contracts in schemas/ are the single source of column names and types."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.codes import normalize as normalize_code
from pipelines.contracts import ContractError, load_contract, read_contract
from pipelines.value_sets import matches, value_set, value_set_names
from pipelines.warehouse import SCHEMAS, create_schemas

# The column lists of DESIGN.md, written out by hand: the YAML must say the same.
DESIGN_INTAKE = [
    "encounter_id",
    "patient_id",
    "encounter_date",
    "age_years",
    "sex",
    "smoking_status",
    "prior_cancer",
    "chief_complaint",
    "dx_codes",
    "back_pain",
    "pain_site",
    "pain_duration_days",
    "pain_score",
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
]
DESIGN_REFERRALS = [
    "referral_id",
    "patient_id",
    "referral_date",
    "referral_type",
    "modality",
    "body_region",
    "code",
    "code_system",
    "urgency",
]


def test_intake_contract_matches_design():
    c = load_contract("intake")
    assert c.names == DESIGN_INTAKE
    assert c.required_names == ["encounter_id", "patient_id", "encounter_date", "age_years", "sex"]
    assert c.primary_key == "encounter_id"
    age = c.column("age_years")
    assert (age.type, age.min, age.max, age.cap) == ("integer", 0, 90, 90)
    assert c.column("sex").allowed == ("F", "M", "X", "U")
    assert c.column("pain_score").max == 10
    # 15 symptoms + back_pain + prior_cancer are the 17 booleans of the completeness.
    assert len([col for col in c.columns if col.symptom]) == 15
    assert len(c.columns_of_type("boolean")) == 17
    assert c.pandas_dtypes()["night_pain"] == "boolean"
    assert c.pandas_dtypes()["encounter_date"] == "datetime64[us]"


def test_referrals_and_diagnoses_contracts():
    r = load_contract("referrals")
    assert r.names == DESIGN_REFERRALS
    assert r.column("referral_type").allowed == ("imaging", "biopsy")
    assert r.column("patient_id").references == "intake.patient_id"
    d = load_contract("diagnoses")
    assert d.names == ["patient_id", "diagnosis_date", "code", "code_system"]
    assert d.required_table is False


def test_bad_contract_is_reported_with_its_file(tmp_path: Path):
    (tmp_path / "intake.yml").write_text(
        "table: intake\ncolumns:\n  - name: x\n    type: float\n", encoding="utf-8"
    )
    with pytest.raises(ContractError, match=r"intake\.yml.*'float'"):
        read_contract("intake", tmp_path / "intake.yml")


def test_warehouse_ddl_comes_from_contracts():
    con = duckdb.connect()
    create_schemas(con)
    schemas = {
        r[0] for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
    }
    assert set(SCHEMAS) <= schemas
    staged = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'staging' AND table_name = 'intake' ORDER BY ordinal_position"
        ).fetchall()
    )
    assert list(staged)[: len(DESIGN_INTAKE)] == DESIGN_INTAKE
    assert staged["encounter_date"] == "DATE"
    assert staged["age_years"] == "INTEGER"
    assert staged["night_pain"] == "BOOLEAN"
    raw_types = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT data_type FROM information_schema.columns "
            "WHERE table_schema = 'raw' AND table_name = 'intake' AND column_name <> 'source_row'"
        ).fetchall()
    }
    assert raw_types == {"VARCHAR"}


@pytest.mark.parametrize(
    ("code", "value_set_name", "expected"),
    [
        ("M54.50", "back_pain", True),
        ("m545", "back_pain", True),
        ("M54.6", "back_pain", True),
        ("M54.6", "site_thoracic", True),
        ("M54.2", "back_pain", False),  # cervicalgia is not in the back-pain list
        ("M54.9", "back_pain", True),
        ("C34.90", "prior_cancer", True),
        ("C97", "prior_cancer", True),
        ("D05.1", "prior_cancer", False),
        ("Z85.118", "prior_cancer", True),
        ("R63.4", "unexplained_weight_loss", True),
        ("R63.0", "unexplained_weight_loss", False),
        ("R32", "bladder_bowel_dysfunction", True),
        ("R33.9", "bladder_bowel_dysfunction", True),
        ("Z87.891", "ever_smoked", True),
        ("C79.51", "bone_metastasis", True),
        ("72148", "modality_mri", True),
        ("72148", "region_spine", True),
        ("71046", "region_chest", True),
        ("32408", "referral_biopsy", True),
        ("432231006", "referral_biopsy", True),
    ],
)
def test_value_set_membership(code: str, value_set_name: str, expected: bool):
    assert matches(code, value_set_name) is expected


def test_value_sets_cover_clinical_md():
    names = set(value_set_names())
    for needed in [
        "back_pain",
        "prior_cancer",
        "persistent_cough",
        "unexplained_weight_loss",
        "fatigue",
        "appetite_loss",
        "dyspnea",
        "chest_pain",
        "hemoptysis",
        "limb_numbness",
        "limb_tingling",
        "limb_weakness",
        "bladder_bowel_dysfunction",
        "fever",
        "ever_smoked",
        "lung_cancer",
        "bone_metastasis",
        "referral_imaging",
        "referral_biopsy",
    ]:
        assert needed in names
    # Every procedure code has exactly one referral type and one modality.
    codes = {e.code for e in value_set("referral_imaging")} | {
        e.code for e in value_set("referral_biopsy")
    }
    for code in codes:
        kinds = [n for n in names if n.startswith("referral_") and matches(code, n)]
        modalities = [n for n in names if n.startswith("modality_") and matches(code, n)]
        assert len(kinds) == 1 and len(modalities) == 1, code
    assert normalize_code(" m54.5 ") == "M545"
