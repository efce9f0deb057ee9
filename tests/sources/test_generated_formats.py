"""`redflags generate --format omop|fhir`: the same synthetic population through each
adapter gives the same canonical rows and the same marts.

The population is generated once (canonical Parquet), written as OMOP CDM tables and
as FHIR NDJSON by pipelines/synth/omop.py and fhir.py, and read back by the adapters.
What neither a CDM nor the adapters carry (free text, yes/no fields, urgency in OMOP)
is left out of the comparison with the canonical files, and said so below.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.sources import fhir, omop
from pipelines.synth.fhir import write_fhir
from pipelines.synth.generate import generate
from pipelines.synth.omop import write_omop
from tests.support.adapters import run_cli

PATIENTS = 60
# Columns that are ids (pseudonyms in FHIR, integers in OMOP) or say when and which run.
NOT_COMPARED = ("encounter_id", "patient_id", "referral_id", "run_id")


@pytest.fixture(scope="module")
def formats(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("formats")
    canonical = root / "canonical"
    generate(
        canonical,
        patients=PATIENTS,
        seed=7,
        start=date(2023, 1, 1),
        end=date(2024, 12, 31),
        fmt="parquet",
    )
    write_omop(canonical, root / "omop")
    write_fhir(canonical, root / "fhir")
    omop.convert(root / "omop", root / "omop_out")
    fhir.convert(root / "fhir", root / "fhir_out")
    return {
        "canonical": canonical,
        "omop": root / "omop_out",
        "fhir": root / "fhir_out",
        "root": root,
    }


def table_rows(path: Path, drop: tuple[str, ...] = NOT_COMPARED) -> list[tuple]:
    rel = duckdb.sql(f"SELECT * FROM read_parquet('{path}')")
    keep = [c for c in rel.columns if c not in drop]
    return sorted(rel.select(*keep).fetchall(), key=repr)


@pytest.mark.parametrize("table", ["intake", "referrals", "diagnoses"])
def test_omop_and_fhir_give_the_same_canonical_rows(formats, table: str):
    # OMOP has no place for an order's urgency; FHIR's ServiceRequest.priority has.
    drop = (*NOT_COMPARED, "urgency")
    omop_rows = table_rows(formats["omop"] / f"{table}.parquet", drop)
    assert omop_rows  # the population has rows of every table
    assert omop_rows == table_rows(formats["fhir"] / f"{table}.parquet", drop)


def test_coded_presentations_match_the_canonical_files(formats):
    """Every canonical presentation with a dx code comes back with its date, age, sex
    and codes (sorted: the adapters write dx_codes in code order). A diagnosis on the
    day of one of the patient's visits joins that visit, as a condition without a visit
    does in a CDM; presentations documented only in text and yes/no fields are not
    carried by a coded source."""
    canonical = formats["canonical"]
    expected = duckdb.sql(
        f"""WITH dx AS (
            SELECT encounter_id, unnest(string_split(dx_codes, ';')) AS code
            FROM read_parquet('{canonical / "intake.parquet"}')
            UNION
            SELECT (SELECT min(i.encounter_id) FROM read_parquet('{canonical / "intake.parquet"}') i
                    WHERE i.patient_id = d.patient_id AND i.encounter_date = d.diagnosis_date),
                   d.code
            FROM read_parquet('{canonical / "diagnoses.parquet"}') d
        )
        SELECT i.encounter_date, i.age_years, i.sex, string_agg(code, ';' ORDER BY code)
        FROM read_parquet('{canonical / "intake.parquet"}') i JOIN dx USING (encounter_id)
        WHERE code <> ''
        GROUP BY i.encounter_id, i.encounter_date, i.age_years, i.sex"""
    ).fetchall()
    got = duckdb.sql(
        f"SELECT encounter_date, age_years, sex, dx_codes "
        f"FROM read_parquet('{formats['omop'] / 'intake.parquet'}')"
    ).fetchall()
    assert sorted(got) == sorted(expected)


@pytest.mark.slow
def test_omop_and_fhir_runs_publish_the_same_marts(formats):
    root = formats["root"]
    marts = {}
    for kind in ("omop", "fhir"):
        result, _ = run_cli(kind, root / kind, root / f"{kind}.duckdb")
        assert result.returncode == 0, result.stderr
        with duckdb.connect(str(root / f"{kind}.duckdb"), read_only=True) as con:
            names = [
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts' ORDER BY 1"
                ).fetchall()
            ]
            marts[kind] = {}
            for name in names:
                rel = con.sql(f"SELECT * FROM marts.{name}")
                keep = [c for c in rel.columns if c not in NOT_COMPARED]
                marts[kind][name] = sorted(rel.select(*keep).fetchall(), key=repr)
    assert marts["omop"].keys() == marts["fhir"].keys() and marts["omop"]
    for name in marts["omop"]:
        assert marts["omop"][name] == marts["fhir"][name], name
