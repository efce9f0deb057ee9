"""OMOP CDM v5.3 / v5.4 tables -> the canonical intake, referrals and diagnoses.

A CDM export is a folder of tables, one file each, as CSV (any case of file and
column names, optionally gzipped, comma or tab separated) or Parquet. DuckDB reads
and joins them; nothing loops over rows in Python. The reading of each CDM table
into the source-neutral staging tables is here; the mapping itself, shared with
the FHIR adapter, is in pipelines.sources.mapping.

Which CDM field feeds which canonical column is documented in docs/sources.md.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.errors import UserError
from pipelines.sources.mapping import (
    REFERRAL,
    SMOKING,
    TOBACCO,
    best_match_sql,
    build_canonical,
    connect,
    create_staging,
    system_sql,
)
from pipelines.sources.report import AdapterReport
from pipelines.sqltext import identifier, literal
from pipelines.sqltext import path as sql_path

SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet")

# CDM tables read, with the columns the adapter needs (`required`) and the ones it
# uses when present (`optional`; v5.3 and v5.4 differ, and exports trim columns).
TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "person": {
        "required": ("person_id", "year_of_birth"),
        "optional": ("gender_concept_id", "gender_source_value", "month_of_birth", "day_of_birth"),
    },
    "visit_occurrence": {
        "required": ("visit_occurrence_id", "person_id", "visit_start_date"),
        "optional": (),
    },
    "condition_occurrence": {
        "required": ("condition_occurrence_id", "person_id", "condition_start_date"),
        "optional": (
            "visit_occurrence_id",
            "condition_concept_id",
            "condition_source_value",
            "condition_source_concept_id",
        ),
    },
    "procedure_occurrence": {
        "required": ("procedure_occurrence_id", "person_id", "procedure_date"),
        "optional": (
            "procedure_concept_id",
            "procedure_source_value",
            "procedure_source_concept_id",
        ),
    },
    "observation": {
        "required": ("observation_id", "person_id", "observation_date"),
        "optional": (
            "observation_concept_id",
            "observation_source_value",
            "observation_source_concept_id",
            "value_as_concept_id",
            "value_as_string",
            "value_source_value",
        ),
    },
    "measurement": {
        "required": ("measurement_id", "person_id", "measurement_date"),
        "optional": (
            "measurement_concept_id",
            "measurement_source_value",
            "measurement_source_concept_id",
        ),
    },
    "death": {"required": ("person_id",), "optional": ()},
    "concept": {
        "required": ("concept_id", "concept_code", "vocabulary_id"),
        "optional": (),
    },
}
OPTIONAL_TABLES: frozenset[str] = frozenset({"measurement", "death", "concept"})
# Where each table's imaging orders may sit: (table, id column, date column, prefix of
# its concept and source-value columns, referral key prefix, must every row map?).
# procedure_occurrence rows that map to no imaging or biopsy are counted as unmapped;
# measurement and observation rows are mostly other things and are only searched.
PROCEDURE_SOURCES: tuple[tuple[str, str, str, str, str, bool], ...] = (
    (
        "procedure_occurrence",
        "procedure_occurrence_id",
        "procedure_date",
        "procedure",
        "proc",
        True,
    ),
    ("measurement", "measurement_id", "measurement_date", "measurement", "meas", False),
    ("observation", "observation_id", "observation_date", "observation", "obs", False),
)


def find_tables(input_dir: Path) -> dict[str, Path]:
    """The file of each CDM table in input_dir, by case-insensitive name (person.csv.gz...)."""
    if not input_dir.is_dir():
        raise UserError(
            f"{input_dir}: not a directory; pass --input DIR with the OMOP CDM tables", exit_code=2
        )
    found: dict[str, Path] = {}
    for path in sorted(input_dir.iterdir()):
        name = path.name.lower()
        suffix = next((s for s in SUFFIXES if name.endswith(s)), None)
        stem = name[: -len(suffix)] if suffix else None
        if path.is_file() and stem in TABLES:
            if stem in found:
                raise UserError(
                    f"{input_dir}: two files for the OMOP table {stem} "
                    f"({found[stem].name}, {path.name}); keep one"
                )
            found[stem] = path
    missing = [t for t in TABLES if t not in OPTIONAL_TABLES and t not in found]
    if missing:
        raise UserError(
            f"{input_dir}: OMOP CDM table(s) {', '.join(missing)} not found; expected files "
            "such as person.csv, visit_occurrence.csv, condition_occurrence.csv, "
            "procedure_occurrence.csv, observation.csv (CSV, CSV.gz or Parquet)"
        )
    return found


def _relation(path: Path) -> str:
    if path.name.lower().endswith(".parquet"):
        return f"read_parquet({sql_path(path)})"
    return f"read_csv({sql_path(path)}, header = true, all_varchar = true)"


def empty_table_note(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> str | None:
    """Why an optional table's file holds nothing to read (0 bytes, or a header and no
    row), as the source report's note, or None when it has a row.

    Exports write every table of the CDM, the unused ones empty: an empty measurement
    file is a table the site does not fill, not a broken one. One row is enough to
    tell, so a large table is not read here.
    """
    if path.stat().st_size == 0:
        what = "empty (0 bytes)"
    else:
        try:
            has_row = con.execute(f"SELECT 1 FROM {_relation(path)} LIMIT 1").fetchone()
        except duckdb.Error:
            return None  # load_table says what is wrong with it
        if has_row is not None:
            return None
        what = "no rows (a header only)"
    return f"{path.name}: {what}; the optional OMOP {table} table was skipped"


def load_table(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> int:
    """A view `omop_<table>` with the needed columns as text, lower-case names; row count.

    Columns missing from the file are NULL when optional; a missing required column
    stops the run with the file and the column named.
    """
    relation = _relation(path)
    try:
        present = {
            row[0].lower(): row[0]
            for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        }
    except duckdb.Error as exc:
        raise UserError(f"{path}: cannot be read as an OMOP {table} table ({exc})") from None
    spec = TABLES[table]
    missing = [c for c in spec["required"] if c not in present]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)} of the OMOP {table} table; "
            "see the OMOP CDM v5.4 table definitions"
        )
    columns = ", ".join(
        f"CAST({identifier(present[c])} AS VARCHAR) AS {c}"
        if c in present
        else f"CAST(NULL AS VARCHAR) AS {c}"
        for c in spec["required"] + spec["optional"]
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE omop_{table} AS SELECT {columns} FROM {relation}")
    return int(con.execute(f"SELECT count(*) FROM omop_{table}").fetchone()[0])


def _concept(con: duckdb.DuckDBPyConnection, has_concept: bool) -> None:
    """`rf_concept(concept_id, code, system)`: empty without the concept table."""
    if has_concept:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE rf_concept AS
            SELECT trim(concept_id) AS concept_id, trim(concept_code) AS code,
                   {system_sql("vocabulary_id")} AS system
            FROM omop_concept"""
        )
    else:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE rf_concept "
            "(concept_id VARCHAR, code VARCHAR, system VARCHAR)"
        )


def _stage(con: duckdb.DuckDBPyConnection, found: dict[str, Path]) -> None:
    """Fill the staging tables of pipelines.sources.mapping from the omop_* views."""
    con.execute(
        """INSERT INTO src_person
        SELECT trim(person_id), try_cast(year_of_birth AS INTEGER),
               try_cast(month_of_birth AS INTEGER), try_cast(day_of_birth AS INTEGER)
        FROM omop_person"""
    )
    # Sex: the gender concept first, then the source value (the systems name the
    # columns of schemas/value_sets/demographics.csv).
    con.execute(
        """INSERT INTO src_person_code
        SELECT trim(person_id), 1, trim(gender_concept_id), 'OMOP' FROM omop_person
        UNION ALL
        SELECT trim(person_id), 2, trim(gender_source_value), 'LOCAL' FROM omop_person"""
    )
    con.execute(
        """INSERT INTO src_visit
        SELECT trim(visit_occurrence_id), trim(person_id), rf_date(visit_start_date)
        FROM omop_visit_occurrence"""
    )
    con.execute(
        """INSERT INTO src_condition
        SELECT trim(condition_occurrence_id), trim(person_id),
               nullif(trim(visit_occurrence_id), ''),
               rf_date(condition_start_date)
        FROM omop_condition_occurrence"""
    )
    # Condition codes, best first: the source concept (ICD-10-CM or ICD-9-CM), the
    # source value, the standard concept (SNOMED). The source value is the source
    # concept's code, so it takes that concept's vocabulary when one we know is named:
    # ICD-9-CM E879.8 must never pass for ICD-10-CM E87.98. With no concept (or a local
    # one) its system is unknown (NULL) and its shape decides (mapping.ICD10CM_SHAPE).
    con.execute(
        """INSERT INTO src_condition_code
        SELECT trim(o.condition_occurrence_id), 1, c.code, c.system
        FROM omop_condition_occurrence o JOIN rf_concept c
          ON c.concept_id = trim(o.condition_source_concept_id)
        UNION ALL
        SELECT trim(o.condition_occurrence_id), 2, trim(o.condition_source_value),
               nullif(c.system, 'OTHER')
        FROM omop_condition_occurrence o LEFT JOIN rf_concept c
          ON c.concept_id = trim(o.condition_source_concept_id)
        WHERE nullif(trim(o.condition_source_value), '') IS NOT NULL
        UNION ALL
        SELECT trim(o.condition_occurrence_id), 3, c.code, c.system
        FROM omop_condition_occurrence o JOIN rf_concept c
          ON c.concept_id = trim(o.condition_concept_id)"""
    )
    # Smoking: answer concepts (value, then the observation concept itself), then text.
    con.execute(
        """INSERT INTO src_smoking
        SELECT trim(o.observation_id), trim(o.person_id), rf_date(o.observation_date),
               1, c.code, c.system, NULL
        FROM omop_observation o JOIN rf_concept c ON c.concept_id = trim(o.value_as_concept_id)
        UNION ALL
        SELECT trim(o.observation_id), trim(o.person_id), rf_date(o.observation_date),
               2, c.code, c.system, NULL
        FROM omop_observation o JOIN rf_concept c ON c.concept_id = trim(o.observation_concept_id)
        UNION ALL
        SELECT trim(observation_id), trim(person_id), rf_date(observation_date), 3,
               NULL, NULL, value_as_string FROM omop_observation WHERE value_as_string <> ''
        UNION ALL
        SELECT trim(observation_id), trim(person_id), rf_date(observation_date), 4,
               NULL, NULL, value_source_value FROM omop_observation WHERE value_source_value <> ''
        UNION ALL
        SELECT trim(observation_id), trim(person_id), rf_date(observation_date), 5,
               NULL, NULL, observation_source_value FROM omop_observation
        WHERE observation_source_value <> ''
        UNION ALL
        SELECT trim(observation_id), trim(person_id), rf_date(observation_date), 6,
               trim(observation_source_value), NULL, NULL FROM omop_observation
        WHERE observation_source_value <> ''"""
    )
    # Smoking observations are those with a smoking answer or a tobacco-status question
    # (the latter, when their answer maps to nothing, are counted as unmapped).
    con.execute(
        f"""DELETE FROM src_smoking WHERE obs_key NOT IN (
            SELECT key FROM ({best_match_sql("src_smoking", "obs_key", SMOKING)})
            UNION ALL
            SELECT key FROM ({best_match_sql("src_smoking", "obs_key", TOBACCO)}))"""
    )
    for table, id_col, date_col, prefix, key_prefix, must_map in PROCEDURE_SOURCES:
        if table not in found:
            continue
        key = f"{literal(key_prefix + '-')} || trim({id_col})"
        con.execute(
            f"""INSERT INTO src_procedure
            SELECT {key}, trim(person_id), rf_date({date_col}), {literal(table)}, {must_map}, NULL
            FROM omop_{table}"""
        )
        con.execute(
            f"""INSERT INTO src_procedure_code
            SELECT {key}, 1, c.code, c.system, NULL
            FROM omop_{table} o
            JOIN rf_concept c ON c.concept_id = trim(o.{prefix}_source_concept_id)
            UNION ALL
            SELECT {key}, 2, c.code, c.system, NULL
            FROM omop_{table} o JOIN rf_concept c ON c.concept_id = trim(o.{prefix}_concept_id)
            UNION ALL
            SELECT {key}, 3, trim({prefix}_source_value), NULL, NULL FROM omop_{table}
            WHERE {prefix}_source_value <> ''
            UNION ALL
            SELECT {key}, 4, NULL, NULL, {prefix}_source_value FROM omop_{table}
            WHERE {prefix}_source_value <> ''"""
        )
    # Rows of measurement and observation that are no imaging order are not orders.
    con.execute(
        f"""DELETE FROM src_procedure WHERE NOT must_map AND proc_key NOT IN (
            SELECT key FROM ({best_match_sql("src_procedure_code", "proc_key", REFERRAL)}))"""
    )


def check_input(input_dir: Path) -> None:
    """Fail with one clear line when input_dir holds no usable OMOP files."""
    find_tables(Path(input_dir))


def convert(input_dir: Path, out_dir: Path) -> AdapterReport:
    """Convert an OMOP CDM folder into canonical Parquet files in out_dir."""
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    found = find_tables(input_dir)
    report = AdapterReport(source="omop")
    con = connect(out_dir)
    try:
        create_staging(con)
        for table, path in list(found.items()):
            note = empty_table_note(con, table, path) if table in OPTIONAL_TABLES else None
            if note is not None:
                report.notes.append(note)
                del found[table]
                continue
            report.read[table] = load_table(con, table, path)
        _concept(con, "concept" in found)
        _stage(con, found)
        build_canonical(con, out_dir, report, pseudonymise=False)
    finally:
        con.close()
    return report
