"""`redflags generate --format omop|fhir`: the same synthetic population as canonical
files, as OMOP CDM tables and as FHIR NDJSON gives the same canonical rows and
publishes the same marts.

The population is generated once (canonical Parquet), written as OMOP CDM tables and
as FHIR NDJSON by pipelines/synth/omop.py and fhir.py, and read back by the adapters.
Two things of the generated population no coded source can carry are taken out of
the canonical input before anything is written, so that all three runs read one
population:
- the urgency of an order: the CDM has no field for it (FHIR's ServiceRequest.priority
  has, but then OMOP would differ), so every referral's urgency is NULL;
- a presentation with nothing recorded (no code, no text, no intake field; the
  generator makes one in a few hundred): a CDM visit or FHIR Encounter with no record
  is no presentation, and the adapters write intake rows only for visits with a
  condition or an intake answer.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.sources import fhir, omop
from pipelines.synth.fhir import write_fhir
from pipelines.synth.generate import generate
from pipelines.synth.omop import intake_fields, write_omop

PATIENTS = 60
# Columns that are ids (pseudonyms in FHIR, integers in OMOP) or say which run.
NOT_COMPARED = ("encounter_id", "trigger_encounter_id", "patient_id", "referral_id", "run_id")


def _population(generated: Path, canonical: Path) -> None:
    """The generated files without what no coded source carries (see the docstring)."""
    canonical.mkdir()
    recorded = " OR ".join(f"{c} IS NOT NULL" for c in intake_fields())
    selects = {
        "intake": f"SELECT * FROM read_parquet('{generated / 'intake.parquet'}') "
        f"WHERE coalesce(dx_codes, '') <> '' OR {recorded}",
        "referrals": f"SELECT * REPLACE (CAST(NULL AS VARCHAR) AS urgency) "
        f"FROM read_parquet('{generated / 'referrals.parquet'}')",
        "diagnoses": f"SELECT * FROM read_parquet('{generated / 'diagnoses.parquet'}')",
    }
    for table, select in selects.items():
        duckdb.sql(f"COPY ({select}) TO '{canonical / f'{table}.parquet'}' (FORMAT parquet)")


@pytest.fixture(scope="module")
def formats(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("formats")
    generate(
        root / "generated",
        patients=PATIENTS,
        seed=7,
        start=date(2023, 1, 1),
        end=date(2024, 12, 31),
        fmt="parquet",
    )
    canonical = root / "canonical"
    _population(root / "generated", canonical)
    write_omop(canonical, root / "omop")
    write_fhir(canonical, root / "fhir")
    omop.convert(root / "omop", root / "omop_out")
    fhir.convert(root / "fhir", root / "fhir_out")
    return {
        "generated": root / "generated",
        "canonical": canonical,
        "omop": root / "omop_out",
        "fhir": root / "fhir_out",
        "root": root,
    }


def table_rows(path: Path, drop: tuple[str, ...] = NOT_COMPARED) -> list[tuple]:
    rel = duckdb.sql(f"SELECT * FROM read_parquet('{path}')")
    keep = [c for c in rel.columns if c not in drop]
    return sorted(rel.select(*keep).fetchall(), key=repr)


def test_the_population_is_taken_out_of_the_generated_one_as_said(formats):
    """The canonical input differs from the generated files only by what the module
    docstring names: one empty presentation here, and every urgency."""
    generated, canonical = formats["generated"], formats["canonical"]
    n = {
        name: len(table_rows(d / "intake.parquet"))
        for name, d in (("generated", generated), ("canonical", canonical))
    }
    assert n["generated"] - n["canonical"] == 1
    assert duckdb.sql(
        f"SELECT count(urgency) FROM read_parquet('{canonical / 'referrals.parquet'}')"
    ).fetchall() == [(0,)]
    assert table_rows(canonical / "diagnoses.parquet") == table_rows(
        generated / "diagnoses.parquet"
    )


@pytest.mark.parametrize("table", ["intake", "referrals", "diagnoses"])
def test_omop_and_fhir_give_the_same_canonical_rows(formats, table: str):
    omop_rows = table_rows(formats["omop"] / f"{table}.parquet")
    assert omop_rows  # the population has rows of every table
    assert omop_rows == table_rows(formats["fhir"] / f"{table}.parquet")


# How each adapter names a canonical visit: OMOP keeps the writer's visit_occurrence_id
# (visits numbered in encounter_id order), FHIR pseudonymises the Encounter id.
ADAPTER_KEYS = {
    "omop": "CAST(row_number() OVER (ORDER BY encounter_id) AS VARCHAR)",
    "fhir": "left(sha256(encounter_id), 16)",
}


@pytest.mark.parametrize("kind", ["omop", "fhir"])
def test_every_presentation_comes_back_with_what_was_recorded(formats, kind: str):
    """Each canonical presentation comes back with its date, age, sex, smoking status
    at that visit, chief complaint, pain site, duration and score and every yes/no
    field as recorded. dx_codes gains the codes of diagnoses dated on the day of one of
    the patient's visits (a condition without a visit joins that visit, as in a CDM),
    sorted."""
    canonical = formats["canonical"]
    intake = f"read_parquet('{canonical / 'intake.parquet'}')"
    expected = duckdb.sql(
        f"""WITH dx AS (
            SELECT encounter_id, unnest(string_split(dx_codes, ';')) AS code FROM {intake}
            UNION
            SELECT (SELECT min(i.encounter_id) FROM {intake} i
                    WHERE i.patient_id = d.patient_id AND i.encounter_date = d.diagnosis_date),
                   d.code
            FROM read_parquet('{canonical / "diagnoses.parquet"}') d
        )
        SELECT {ADAPTER_KEYS[kind]} AS encounter_id, i.* REPLACE (
            (SELECT string_agg(code, ';' ORDER BY code) FROM dx
             WHERE dx.encounter_id = i.encounter_id AND code <> '') AS dx_codes)
        FROM {intake} i"""
    )
    got = duckdb.sql(f"SELECT * FROM read_parquet('{formats[kind] / 'intake.parquet'}')")
    columns = [c for c in expected.columns if c != "patient_id"]
    want = {r[0]: dict(zip(columns, r, strict=True)) for r in expected.select(*columns).fetchall()}
    have = {r[0]: dict(zip(columns, r, strict=True)) for r in got.select(*columns).fetchall()}
    assert have.keys() == want.keys()
    for key, row in want.items():
        assert have[key] == row


@pytest.mark.slow
def test_canonical_omop_and_fhir_runs_publish_the_same_marts(formats):
    root = formats["root"]
    inputs = {"canonical": formats["canonical"], "omop": root / "omop", "fhir": root / "fhir"}
    marts = {}
    # In this process: Prefect starts once, not once per run.
    from pipelines.flows.prefect_env import configure_prefect

    configure_prefect()
    from pipelines.flows.run import redflags_run

    for kind, input_dir in inputs.items():
        # The marts do not depend on the release's minimum cell; with 1 nothing is
        # suppressed, so the disclosure audit (tests/disclosure) has nothing to solve.
        redflags_run(
            input_dir=str(input_dir),
            warehouse=str(root / f"{kind}.duckdb"),
            source=kind,
            min_cell=1,
        )
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
    assert {"index_presentations", "cohort_summary"} <= marts["canonical"].keys()
    assert marts["canonical"]["index_presentations"]  # the population has index events
    for kind in ("omop", "fhir"):
        assert marts[kind].keys() == marts["canonical"].keys(), kind
        for name in marts["canonical"]:
            assert marts[kind][name] == marts["canonical"][name], (kind, name)
