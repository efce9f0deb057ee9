"""FHIR R4 resources -> the canonical intake, referrals and diagnoses.

Input: a folder of Bundle JSON files (one per patient, as Synthea writes them) or
of Bulk Data NDJSON files (one resource per line, one resource type per file), or
both. DuckDB's JSON reader parses the files; the adapter pulls only the fields the
canonical tables need (ids, references, dates, codes, gender, birth date, the
intake form's answers and the text of an Encounter's reason) into the staging
tables of pipelines.sources.mapping. Names, addresses, telecom and
identifiers are never selected, so they never reach the warehouse.

Files are read in bounded batches (`BATCH_FILES` bundles, or one NDJSON file at a
time, which DuckDB reads in chunks): memory follows the batch, not the folder.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.errors import UserError
from pipelines.sources.mapping import (
    INTAKE_FIELD,
    TOBACCO,
    build_canonical,
    connect,
    create_staging,
    system_sql,
)
from pipelines.sources.report import AdapterReport
from pipelines.sqltext import literal, path_list

BUNDLE_SUFFIXES: tuple[str, ...] = (".json", ".json.gz")
NDJSON_SUFFIXES: tuple[str, ...] = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")
BATCH_FILES = 200
# Synthea writes one bundle per patient; a long medical history can exceed DuckDB's
# default limit of 16 MB per JSON object.
MAX_OBJECT_BYTES = 1 << 30
# Where each resource type keeps the status that can void it (value sets
# `excluded_<type>` in schemas/value_sets/fhir_status.csv).
EXCLUDED = "excluded_"
STATUS_PATHS: dict[str, str] = {
    "Encounter": "$.status",
    "Condition": "$.verificationStatus.coding[0].code",
    "Observation": "$.status",
    "Procedure": "$.status",
    "ServiceRequest": "$.status",
    "ImagingStudy": "$.status",
}
RESOURCE_TYPES: tuple[str, ...] = (
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "Procedure",
    "ServiceRequest",
    "ImagingStudy",
)


def _ref(path: str) -> str:
    """SQL: the logical id a Reference points to ('Patient/1', 'urn:uuid:1' -> '1')."""
    return f"regexp_replace(r->>{literal(path)}, '^(urn:uuid:|.*/)', '')"


def _date(*paths: str) -> str:
    """SQL: the first of several date elements that is present, as a DATE."""
    return "rf_date(coalesce(" + ", ".join(f"r->>{literal(p)}" for p in paths) + "))"


def _codings(path: str) -> str:
    """SQL unnesting the codings at a JSONPath with their position (rank) and system."""
    return (
        f"unnest(range(1, len(json_extract(r, {literal(path)})) + 1)) AS rank, "
        f"unnest(json_extract(r, {literal(path)})) AS coding"
    )


def _order_sql(
    resource_type: str,
    *,
    dates: tuple[str, ...],
    codings: tuple[str, ...],
    text: str,
    urgency: str = "NULL",
) -> tuple[str, str]:
    """INSERTs of an order-like resource: one procedure row and its candidate codes.

    The codings at each path in `codings` rank after those of the paths before it;
    the text ranks after every code, and the codings' display texts last, so text
    counts only when no code maps.
    """
    key = f"{literal(resource_type + '/')} || (r->>'id')"
    rows = f"FROM res WHERE r->>'resourceType' = {literal(resource_type)}"
    codes = [
        f"""SELECT key, {100 * n} + rank, coding->>'code', {system_sql("coding->>'system'")}, NULL
        FROM (SELECT {key} AS key, {_codings(path)} {rows})"""
        for n, path in enumerate(codings)
    ]
    codes.append(f"SELECT {key}, 1000, NULL, NULL, {text} {rows}")
    # The codings' display text, after the resource's own text: a body site shown as
    # "Wrist" gives the region (schemas/value_sets/procedure_keywords.csv).
    codes += [
        f"""SELECT key, {1100 + 100 * n} + rank, NULL, NULL, coding->>'display'
        FROM (SELECT {key} AS key, {_codings(path)} {rows})"""
        for n, path in enumerate(codings)
    ]
    return (
        f"""INSERT INTO src_procedure
        SELECT {key}, {_ref("$.subject.reference")}, {_date(*dates)},
               {literal(resource_type)}, TRUE, {urgency}
        {rows}""",
        "INSERT INTO src_procedure_code\n" + "\nUNION ALL\n".join(codes),
    )


# What each resource type contributes: INSERT statements over `res(r JSON)`, the
# resources of one batch. Only the listed elements are ever read.
EXTRACTS: dict[str, tuple[str, ...]] = {
    "Patient": (
        """INSERT INTO src_person
        SELECT r->>'id', try_cast(substr(r->>'birthDate', 1, 4) AS INTEGER),
               try_cast(substr(r->>'birthDate', 6, 2) AS INTEGER),
               try_cast(substr(r->>'birthDate', 9, 2) AS INTEGER)
        FROM res WHERE r->>'resourceType' = 'Patient'""",
        """INSERT INTO src_person_code
        SELECT r->>'id', 1, r->>'gender', 'FHIR'
        FROM res WHERE r->>'resourceType' = 'Patient'""",
        # deceasedDateTime only: deceasedBoolean says that, not when.
        """INSERT INTO src_patient_period
        SELECT r->>'id', rf_date(r->>'deceasedDateTime'), NULL, NULL
        FROM res WHERE r->>'resourceType' = 'Patient' AND r->>'deceasedDateTime' IS NOT NULL""",
    ),
    # The chief complaint: the text of the Encounter's first reason (R4 has no
    # element of its own for it), staged as the answer to the question
    # "Encounter.reasonCode" (value set intake_field:chief_complaint).
    "Encounter": (
        f"""INSERT INTO src_visit
        SELECT r->>'id', {_ref("$.subject.reference")}, {_date("$.period.start", "$.period.end")}
        FROM res WHERE r->>'resourceType' = 'Encounter'""",
        """INSERT INTO src_answer
        SELECT 'Encounter/' || (r->>'id'), r->>'id', NULL, NULL, r->>'$.reasonCode[0].text'
        FROM res WHERE r->>'resourceType' = 'Encounter'
          AND nullif(trim(r->>'$.reasonCode[0].text'), '') IS NOT NULL""",
        """INSERT INTO src_answer_code
        SELECT 'Encounter/' || (r->>'id'), 1, 'Encounter.reasonCode', 'FHIR_ELEMENT', NULL
        FROM res WHERE r->>'resourceType' = 'Encounter'
          AND nullif(trim(r->>'$.reasonCode[0].text'), '') IS NOT NULL""",
    ),
    "Condition": (
        f"""INSERT INTO src_condition
        SELECT r->>'id', {_ref("$.subject.reference")}, {_ref("$.encounter.reference")},
               {_date("$.onsetDateTime", "$.onsetPeriod.start", "$.recordedDate")}
        FROM res WHERE r->>'resourceType' = 'Condition'""",
        f"""INSERT INTO src_condition_code
        SELECT id, rank, coding->>'code', {system_sql("coding->>'system'")}
        FROM (SELECT r->>'id' AS id, {_codings("$.code.coding[*]")}
              FROM res WHERE r->>'resourceType' = 'Condition')""",
    ),
    # Smoking status: Observations whose code is in the tobacco_observation value set
    # (LOINC 72166-2); their answer codings first, then the answer's text. One with an
    # encounter is that visit's status.
    # Intake form answers: Observations of an encounter whose code is in an
    # intake_field value set; the value as a coding and as text (valueBoolean true or
    # false, valueString, valueInteger, valueQuantity.value, the concept's text).
    "Observation": (
        f"""INSERT INTO src_smoking
        WITH obs AS (
            SELECT r FROM res WHERE r->>'resourceType' = 'Observation' AND EXISTS (
                SELECT 1 FROM unnest(json_extract(r, '$.code.coding[*]')) AS t(coding)
                JOIN rf_vs v ON starts_with(v.value_set, {literal(TOBACCO)})
                 AND v.code = rf_norm_code(coding->>'code'))
        )
        SELECT id, subject, obs_date, rank, coding->>'code',
               {system_sql("coding->>'system'")}, NULL, visit
        FROM (SELECT r->>'id' AS id, {_ref("$.subject.reference")} AS subject,
                     {_date("$.effectiveDateTime", "$.effectivePeriod.start", "$.issued")}
                     AS obs_date, {_ref("$.encounter.reference")} AS visit,
                     {_codings("$.valueCodeableConcept.coding[*]")}
              FROM obs)
        UNION ALL
        SELECT r->>'id', {_ref("$.subject.reference")},
               {_date("$.effectiveDateTime", "$.effectivePeriod.start", "$.issued")},
               1000, NULL, NULL, coalesce(r->>'$.valueCodeableConcept.text', r->>'valueString'),
               {_ref("$.encounter.reference")}
        FROM obs""",
        f"""CREATE OR REPLACE TEMP TABLE fhir_answer AS
        SELECT r FROM res WHERE r->>'resourceType' = 'Observation'
          AND r->>'$.encounter.reference' IS NOT NULL AND EXISTS (
            SELECT 1 FROM unnest(json_extract(r, '$.code.coding[*]')) AS t(coding)
            JOIN rf_vs v ON starts_with(v.value_set, {literal(INTAKE_FIELD)})
             AND v.code = rf_norm_code(coding->>'code'))""",
        f"""INSERT INTO src_answer
        SELECT 'Observation/' || (r->>'id'), {_ref("$.encounter.reference")},
               r->>'$.valueCodeableConcept.coding[0].code',
               {system_sql("r->>'$.valueCodeableConcept.coding[0].system'")},
               coalesce(r->>'valueBoolean', r->>'valueString', r->>'valueInteger',
                        r->>'$.valueQuantity.value', r->>'$.valueCodeableConcept.text')
        FROM fhir_answer""",
        f"""INSERT INTO src_answer_code
        SELECT key, rank, coding->>'code', {system_sql("coding->>'system'")}, NULL
        FROM (SELECT 'Observation/' || (r->>'id') AS key, {_codings("$.code.coding[*]")}
              FROM fhir_answer)""",
    ),
    "Procedure": _order_sql(
        "Procedure",
        dates=("$.performedDateTime", "$.performedPeriod.start"),
        codings=("$.code.coding[*]",),
        text="r->>'$.code.text'",
    ),
    # A ServiceRequest is the order itself: dated when it was authored.
    "ServiceRequest": _order_sql(
        "ServiceRequest",
        dates=("$.authoredOn", "$.occurrenceDateTime", "$.occurrencePeriod.start"),
        codings=("$.code.coding[*]",),
        text="r->>'$.code.text'",
        urgency="r->>'priority'",
    ),
    # ImagingStudy: the procedure codes first, then each series' DICOM modality and
    # body site (so a study with no procedure code still has a modality and region).
    "ImagingStudy": _order_sql(
        "ImagingStudy",
        dates=("$.started",),
        codings=("$.procedureCode[*].coding[*]", "$.series[*].modality", "$.series[*].bodySite"),
        text="coalesce(r->>'description', r->>'$.procedureCode[0].text')",
    ),
}


def find_files(input_dir: Path) -> tuple[list[Path], list[Path]]:
    """Bundle files and NDJSON files in input_dir (not recursive), sorted by name."""
    if not input_dir.is_dir():
        raise UserError(
            f"{input_dir}: not a directory; pass --input DIR with FHIR Bundle JSON or "
            "Bulk Data NDJSON files",
            exit_code=2,
        )
    bundles, ndjson = [], []
    for path in sorted(input_dir.iterdir()):
        name = path.name.lower()
        if not path.is_file():
            continue
        if name.endswith(BUNDLE_SUFFIXES):
            bundles.append(path)
        elif name.endswith(NDJSON_SUFFIXES):
            ndjson.append(path)
    if not bundles and not ndjson:
        raise UserError(
            f"{input_dir}: no FHIR files found; expected Bundle *.json files (one per "
            "patient) or Bulk Data *.ndjson files (one resource type per file)"
        )
    return bundles, ndjson


def _load_batch(con: duckdb.DuckDBPyConnection, paths: list[Path], *, bundles: bool) -> None:
    """Resources of a batch of files into `res(r JSON)` (entries of Bundles unnested).

    When the batch fails to parse, its files are tried one by one so the error names
    the file at fault.
    """
    fmt = "auto" if bundles else "newline_delimited"
    resource = (
        "unnest(CASE WHEN json->>'resourceType' = 'Bundle' "
        "THEN json_extract(json, '$.entry[*].resource') ELSE [json] END)"
        if bundles
        else "json"
    )

    def load(batch: list[Path]) -> None:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE res AS SELECT {resource} AS r FROM read_json_objects("
            f"{path_list(batch)}, format = {literal(fmt)}, "
            f"maximum_object_size = {MAX_OBJECT_BYTES})"
        )

    try:
        load(paths)
    except duckdb.Error as batch_error:
        for path in paths:
            try:
                load([path])
            except duckdb.Error as exc:
                raise UserError(
                    f"{path}: not valid FHIR JSON ({exc}); fix or remove the file"
                ) from None
        raise UserError(f"{paths[0]} .. {paths[-1].name}: cannot be read ({batch_error})") from None


def _drop_excluded(con: duckdb.DuckDBPyConnection, report: AdapterReport) -> None:
    """Drop (and count) resources whose status says they are void: refuted, in error, not done.

    The statuses are the `excluded_<resource type>` value sets of fhir_status.csv.
    """
    for resource_type, path in STATUS_PATHS.items():
        where = (
            f"r->>'resourceType' = {literal(resource_type)} "
            f"AND rf_norm_code(r->>{literal(path)}) IN ("
            f"SELECT code FROM rf_vs WHERE value_set = {literal(EXCLUDED + resource_type.lower())})"
        )
        n = con.execute(f"SELECT count(*) FROM res WHERE {where}").fetchone()[0]
        key = f"{resource_type}_excluded_by_status"
        report.rejected[key] = report.rejected.get(key, 0) + int(n)
        if n:
            con.execute(f"DELETE FROM res WHERE {where}")


def _extract(con: duckdb.DuckDBPyConnection, report: AdapterReport) -> None:
    """Run every extract over the current batch and count the resources read."""
    for resource_type, count in con.execute(
        "SELECT r->>'resourceType', count(*) FROM res GROUP BY ALL"
    ).fetchall():
        if resource_type in RESOURCE_TYPES:
            report.read[resource_type] = report.read.get(resource_type, 0) + count
        else:
            report.unmapped["resources_of_other_types"] = (
                report.unmapped.get("resources_of_other_types", 0) + count
            )
    _drop_excluded(con, report)
    for statements in EXTRACTS.values():
        for sql in statements:
            con.execute(sql)


def check_input(input_dir: Path) -> None:
    """Fail with one clear line when input_dir holds no usable FHIR files."""
    find_files(Path(input_dir))


def convert(input_dir: Path, out_dir: Path, batch_files: int = BATCH_FILES) -> AdapterReport:
    """Convert a folder of FHIR R4 Bundles or NDJSON into canonical Parquet files in out_dir."""
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    bundles, ndjson = find_files(input_dir)
    report = AdapterReport(source="fhir")
    report.read = {t: 0 for t in RESOURCE_TYPES}
    report.unmapped["resources_of_other_types"] = 0
    con = connect(out_dir)
    try:
        create_staging(con)
        for start in range(0, len(bundles), batch_files):
            _load_batch(con, bundles[start : start + batch_files], bundles=True)
            _extract(con, report)
        for path in ndjson:
            _load_batch(con, [path], bundles=False)
            _extract(con, report)
        con.execute("DROP TABLE IF EXISTS res")
        build_canonical(con, out_dir, report, pseudonymise=True)
    finally:
        con.close()
    return report
