"""How fast, and in how much memory, the OMOP and FHIR adapters convert a source.

`python -m benchmarks --only adapters [--rows PATIENTS ...]` builds a synthetic
OMOP CDM folder (CSV) and a synthetic FHIR Bulk NDJSON folder per size, once, in
benchmarks/cache/, then times `convert` on each in a fresh process. Per patient:
3 visits, 2 conditions per visit, 2 procedures, 1 smoking observation.
`rows` in the results is the number of visits (intake candidates).

Then the whole run (`redflags run`, a fresh warehouse each) on one generated population
of about 1M intake rows (`--rows` sets the intake rows here), written by the generator
as canonical CSV, as OMOP CDM tables and as FHIR NDJSON (`generate --format`). Target:
the OMOP path within 2x the canonical CSV path (`derived`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

from benchmarks.harness import CACHE_DIR, Case, Result
from benchmarks.inputs import ensure_input, patients_for_rows

DEFAULT_PATIENTS = (10_000, 100_000)
GENERATED_INTAKE_ROWS = 1_000_000
# Source kind of `redflags run --source` for each format the generator writes.
GENERATED_FORMATS = {"csv": "canonical", "omop": "omop", "fhir": "fhir"}
OMOP_TARGET_RATIO = 2.0
VISITS_PER_PATIENT = 3


def _copy(con: duckdb.DuckDBPyConnection, select: str, path: Path, fmt: str) -> None:
    con.execute(f"COPY ({select}) TO '{path}' ({fmt})")


def build_omop(folder: Path, patients: int) -> None:
    """A CDM folder whose source values cycle through mapped and unmapped codes."""
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    csv = "FORMAT csv, HEADER true"
    _copy(
        con,
        f"""SELECT i AS person_id, CASE WHEN i % 2 = 0 THEN 8507 ELSE 8532 END AS gender_concept_id,
        1940 + i % 50 AS year_of_birth, 1 + i % 12 AS month_of_birth, 1 + i % 28 AS day_of_birth,
        '' AS gender_source_value FROM range({patients}) t(i)""",
        folder / "person.csv",
        csv,
    )
    _copy(
        con,
        f"""SELECT i AS visit_occurrence_id, i // {VISITS_PER_PATIENT} AS person_id,
        DATE '2023-01-01' + CAST(i % 700 AS INTEGER) AS visit_start_date
        FROM range({patients * VISITS_PER_PATIENT}) t(i)""",
        folder / "visit_occurrence.csv",
        csv,
    )
    _copy(
        con,
        f"""SELECT i AS condition_occurrence_id, i // 6 AS person_id, i // 2 AS visit_occurrence_id,
        DATE '2023-01-01' + CAST((i // 2) % 700 AS INTEGER) AS condition_start_date,
        ['M54.50', '724.2', '786.2', 'R63.4', 'I10', 'C34.90'][1 + i % 6] AS condition_source_value
        FROM range({patients * VISITS_PER_PATIENT * 2}) t(i)""",
        folder / "condition_occurrence.csv",
        csv,
    )
    _copy(
        con,
        f"""SELECT i AS procedure_occurrence_id, i // 2 AS person_id,
        DATE '2023-01-05' + CAST(i % 700 AS INTEGER) AS procedure_date,
        ['72148', '71046', '97110', 'Chest X-ray'][1 + i % 4] AS procedure_source_value
        FROM range({patients * 2}) t(i)""",
        folder / "procedure_occurrence.csv",
        csv,
    )
    _copy(
        con,
        f"""SELECT i AS observation_id, i AS person_id, DATE '2022-12-01' AS observation_date,
        ['Never smoker', 'Former smoker', 'Current every day smoker'][1 + i % 3] AS value_as_string
        FROM range({patients}) t(i)""",
        folder / "observation.csv",
        csv,
    )
    con.close()


def build_fhir(folder: Path, patients: int) -> None:
    """Bulk Data NDJSON, one resource type per file, references as Type/id."""
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    ndjson = "FORMAT json"
    snomed = "'http://snomed.info/sct'"
    _copy(
        con,
        f"""SELECT 'Patient' AS resourceType, 'p' || i AS id,
        CASE WHEN i % 2 = 0 THEN 'male' ELSE 'female' END AS gender,
        CAST(DATE '1940-01-01' + CAST(i % 18000 AS INTEGER) AS VARCHAR) AS birthDate,
        [{{'family': 'Synthetic', 'given': ['Name']}}] AS name
        FROM range({patients}) t(i)""",
        folder / "Patient.ndjson",
        ndjson,
    )
    _copy(
        con,
        f"""SELECT 'Encounter' AS resourceType, 'e' || i AS id,
        {{'reference': 'Patient/p' || (i // {VISITS_PER_PATIENT})}} AS subject,
        {{'start': CAST(DATE '2023-01-01' + CAST(i % 700 AS INTEGER) AS VARCHAR) || 'T09:00:00Z'}}
          AS period
        FROM range({patients * VISITS_PER_PATIENT}) t(i)""",
        folder / "Encounter.ndjson",
        ndjson,
    )
    _copy(
        con,
        f"""SELECT 'Condition' AS resourceType, 'c' || i AS id,
        {{'reference': 'Patient/p' || (i // 6)}} AS subject,
        {{'reference': 'Encounter/e' || (i // 2)}} AS encounter,
        {{'coding': [{{'system': {snomed},
          'code': ['279039007', '49727002', '38341003'][1 + i % 3]}}]}} AS code,
        CAST(DATE '2023-01-01' + CAST((i // 2) % 700 AS INTEGER) AS VARCHAR) AS onsetDateTime
        FROM range({patients * VISITS_PER_PATIENT * 2}) t(i)""",
        folder / "Condition.ndjson",
        ndjson,
    )
    _copy(
        con,
        f"""SELECT 'Observation' AS resourceType, 'o' || i AS id,
        {{'reference': 'Patient/p' || i}} AS subject,
        {{'coding': [{{'system': 'http://loinc.org', 'code': '72166-2'}}]}} AS code,
        '2022-12-01' AS effectiveDateTime,
        {{'coding': [{{'system': {snomed},
          'code': ['266919005', '8517006', '449868002'][1 + i % 3]}}]}} AS valueCodeableConcept
        FROM range({patients}) t(i)""",
        folder / "Observation.ndjson",
        ndjson,
    )
    _copy(
        con,
        f"""SELECT 'Procedure' AS resourceType, 'x' || i AS id,
        {{'reference': 'Patient/p' || (i // 2)}} AS subject,
        {{'coding': [{{'system': {snomed}, 'code': ['399208008', '241615005'][1 + i % 2]}}]}}
          AS code,
        CAST(DATE '2023-01-05' + CAST(i % 700 AS INTEGER) AS VARCHAR) AS performedDateTime
        FROM range({patients * 2}) t(i)""",
        folder / "Procedure.ndjson",
        ndjson,
    )
    con.close()


def cases(options) -> list[Case]:
    sizes = options.rows or list(DEFAULT_PATIENTS)
    out: list[Case] = []
    for patients in sizes:
        for kind, build in (("omop", build_omop), ("fhir", build_fhir)):
            folder = CACHE_DIR / f"adapters_{kind}_{patients}"
            if not folder.exists():
                build(folder, patients)
            out.append(
                Case(
                    name=f"convert_{kind}_{patients}_patients",
                    argv=[
                        sys.executable,
                        "-c",
                        f"from pathlib import Path; from pipelines.sources import {kind}; "
                        f"{kind}.convert(Path({str(folder)!r}), "
                        f"Path({str(CACHE_DIR / f'adapters_out_{kind}_{patients}')!r}))",
                    ],
                    rows=patients * VISITS_PER_PATIENT,
                )
            )
    for size in options.rows or [GENERATED_INTAKE_ROWS]:
        out += generated_run_cases(size)
    return out


def generated_run_cases(size: int) -> list[Case]:
    """`redflags run` on the same generated population in each format."""
    patients = patients_for_rows(size)
    result = []
    for fmt, source in GENERATED_FORMATS.items():
        inputs = ensure_input(patients, fmt=fmt)
        work = CACHE_DIR / f"adapters-run-{fmt}-{patients}"
        argv = [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "--source",
            source,
            "--input",
            str(inputs),
            "--warehouse",
            str(work / "warehouse.duckdb"),
        ]
        result.append(Case(f"redflags run {source} {patients:,} patients", argv, clean=(work,)))
    return result


def derived(results: list[Result]) -> list[str]:
    """The OMOP and FHIR runs over the canonical CSV run of the same population."""
    runs = {r.name.split(" ")[2]: r for r in results if r.name.startswith("redflags run ")}
    canonical = runs.get("canonical")
    if canonical is None:
        return []
    return [
        f"- {r.name}: {r.wall_s / canonical.wall_s:.2f}x the canonical CSV run"
        + (f" (target <= {OMOP_TARGET_RATIO:g}x)" if source == "omop" else "")
        for source, r in runs.items()
        if source != "canonical"
    ]
