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
    CONCEPT_SET_SYSTEMS,
    CROSSWALK,
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
            "value_as_number",
            "value_source_value",
            "visit_occurrence_id",
        ),
    },
    "note": {
        "required": ("note_id", "person_id", "note_text"),
        "optional": (
            "visit_occurrence_id",
            "note_title",
            "note_class_concept_id",
            "note_type_concept_id",
            "note_source_value",
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
    "death": {"required": ("person_id",), "optional": ("death_date", "death_datetime")},
    "observation_period": {
        "required": ("person_id", "observation_period_start_date", "observation_period_end_date"),
        "optional": (),
    },
    "concept": {
        "required": ("concept_id", "concept_code", "vocabulary_id"),
        "optional": ("concept_name", "standard_concept"),
    },
    "concept_relationship": {
        "required": ("concept_id_1", "concept_id_2", "relationship_id"),
        "optional": ("invalid_reason",),
    },
    "concept_ancestor": {
        "required": ("ancestor_concept_id", "descendant_concept_id"),
        "optional": ("min_levels_of_separation",),
    },
}
OPTIONAL_TABLES: frozenset[str] = frozenset(
    {
        "measurement",
        "note",
        "death",
        "observation_period",
        "concept",
        "concept_relationship",
        "concept_ancestor",
    }
)
# Code systems of the concept sets in schemas/value_sets/omop_concept_sets.csv: the
# concept alone, or the concept and every descendant of it (OHDSI's
# "include descendants", read from concept_ancestor).
CONCEPT, DESCENDANTS = CONCEPT_SET_SYSTEMS
# The rows of a vocabulary table the adapter can use, kept at load: a full vocabulary
# holds tens of millions of relationships and ancestors, of which only "Maps to" and
# the descendants of the concept sets' roots matter ({column} is the file's column).
# An id as the adapter compares it: text, trimmed, without the ".0" that an export
# through floating point adds (4180628.0 is concept 4180628).
ID_SQL = r"regexp_replace(trim(CAST({} AS VARCHAR)), '\.0+$', '')"
ROW_FILTERS: dict[str, str] = {
    "concept_relationship": "trim(CAST({relationship_id} AS VARCHAR)) = 'Maps to'",
    "concept_ancestor": (
        ID_SQL.replace("{}", "{ancestor_concept_id}")
        + f" IN (SELECT code FROM rf_vs WHERE code_system = {literal(DESCENDANTS)})"
    ),
}
# Rank of a record's candidate codes (lower first; see pipelines.sources.mapping).
# Codes of the record's concepts come first, source concept before standard concept
# (an ICD-10-CM source code is more specific than the SNOMED concept it maps to), then
# the source value as a code; a concept set that holds the concept only through an
# ancestor ranks after every exact code, nearer ancestors first; names and free
# text come last.
RANK_SOURCE_CONCEPT = 1
RANK_STANDARD_CONCEPT = 2
RANK_MAPPED_CONCEPT = 3
RANK_SOURCE_VALUE = 4
RANK_CONCEPT_SET = 10  # + levels of separation from the concept set's root
RANK_CONCEPT_NAME = 1000
RANK_SOURCE_TEXT = 1001
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


def _is_id(column: str) -> bool:
    return column.endswith("_id") or column in ("concept_id_1", "concept_id_2")


def load_table(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> int:
    """A view `omop_<table>` with the needed columns as text, lower-case names; row count.

    Columns missing from the file are NULL when optional; a missing required column
    stops the run with the file and the column named. Ids are read as ID_SQL says. A
    vocabulary table keeps only the rows the adapter can use (ROW_FILTERS), and its
    count is of those.
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
        (ID_SQL if _is_id(c) else "CAST({} AS VARCHAR)").format(identifier(present[c])) + f" AS {c}"
        if c in present
        else f"CAST(NULL AS VARCHAR) AS {c}"
        for c in spec["required"] + spec["optional"]
    )
    where = ROW_FILTERS.get(table, "TRUE").format(**{c: identifier(present[c]) for c in present})
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE omop_{table} AS SELECT {columns} FROM {relation} "
        f"WHERE {where}"
    )
    return int(con.execute(f"SELECT count(*) FROM omop_{table}").fetchone()[0])


def _concept(con: duckdb.DuckDBPyConnection, found: dict[str, Path]) -> None:
    """The vocabulary as the adapter uses it, each table empty when the export lacks it.

    - `rf_concept(concept_id, code, system, name)`: every concept, its code system
      mapped to ours (schemas/value_sets/code_systems.csv);
    - `rf_maps_to(concept_id, standard_id)`: "Maps to" of concept_relationship, from
      a source (non-standard) concept to its standard concepts;
    - `rf_concept_set(concept_id, root, system, level)`: each concept that a concept set
      of omop_concept_sets.csv holds, through the set's root concept (`root`, level 0)
      or, for a set that includes descendants, through concept_ancestor (level =
      min_levels_of_separation, so a nearer set outranks a broader one).
    """
    if "concept" in found:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE rf_concept AS
            SELECT trim(concept_id) AS concept_id, trim(concept_code) AS code,
                   {system_sql("vocabulary_id")} AS system,
                   nullif(trim(concept_name), '') AS name, trim(vocabulary_id) AS vocabulary
            FROM omop_concept"""
        )
        con.execute(
            "INSERT INTO src_code_label SELECT code, system, vocabulary, name FROM rf_concept"
        )
    else:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE rf_concept "
            "(concept_id VARCHAR, code VARCHAR, system VARCHAR, name VARCHAR, vocabulary VARCHAR)"
        )
    if "concept_relationship" in found:
        con.execute(
            """CREATE OR REPLACE TEMP TABLE rf_maps_to AS
            SELECT DISTINCT trim(concept_id_1) AS concept_id, trim(concept_id_2) AS standard_id
            FROM omop_concept_relationship
            WHERE relationship_id = 'Maps to' AND coalesce(trim(invalid_reason), '') = ''
              AND trim(concept_id_1) <> trim(concept_id_2)"""
        )
    else:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE rf_maps_to (concept_id VARCHAR, standard_id VARCHAR)"
        )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE rf_concept_set AS
        SELECT code AS concept_id, code AS root, code_system AS system, 0 AS level
        FROM rf_vs WHERE code_system IN ({literal(CONCEPT)}, {literal(DESCENDANTS)})"""
    )
    if "concept_ancestor" in found:
        con.execute(
            f"""INSERT INTO rf_concept_set
            SELECT DISTINCT trim(a.descendant_concept_id), v.code, v.code_system,
                   greatest(coalesce(try_cast(a.min_levels_of_separation AS INTEGER), 1), 1)
            FROM omop_concept_ancestor a
            JOIN rf_vs v ON v.code = trim(a.ancestor_concept_id)
             AND v.code_system = {literal(DESCENDANTS)}
            WHERE trim(a.descendant_concept_id) <> trim(a.ancestor_concept_id)"""
        )


def _concept_candidates(table: str, key: str, prefix: str, *, with_text: bool) -> str:
    """SQL: the candidate codes of each row of `omop_<table>` (key, rank, code, system
    and, `with_text`, text), best first as the RANK_* constants say.

    The source value is the source concept's code, so it takes that concept's
    vocabulary when one we know is named: ICD-9-CM E879.8 must never pass for
    ICD-10-CM E87.98. With no concept (or a local one) its system is unknown (NULL)
    and its shape decides (mapping.ICD10CM_SHAPE, ICD9CM_SHAPE).
    """
    text = ", NULL" if with_text else ""
    concept, source = f"trim(o.{prefix}_concept_id)", f"trim(o.{prefix}_source_concept_id)"
    value = f"trim(o.{prefix}_source_value)"
    # The standard concepts of a row: its concept, and what its concepts map to.
    standard = f"""
        SELECT {key} AS key, {concept} AS concept_id FROM omop_{table} o
        UNION ALL SELECT {key}, {source} FROM omop_{table} o
        UNION ALL SELECT {key}, m.standard_id FROM omop_{table} o
          JOIN rf_maps_to m ON m.concept_id = {concept}
        UNION ALL SELECT {key}, m.standard_id FROM omop_{table} o
          JOIN rf_maps_to m ON m.concept_id = {source}"""
    parts = [
        f"""SELECT {key}, {RANK_SOURCE_CONCEPT}, c.code, c.system{text}
        FROM omop_{table} o JOIN rf_concept c ON c.concept_id = {source}""",
        f"""SELECT {key}, {RANK_STANDARD_CONCEPT}, c.code, c.system{text}
        FROM omop_{table} o JOIN rf_concept c ON c.concept_id = {concept}""",
        f"""SELECT {key}, {RANK_MAPPED_CONCEPT}, c.code, c.system{text}
        FROM omop_{table} o JOIN rf_maps_to m ON m.concept_id IN ({concept}, {source})
        JOIN rf_concept c ON c.concept_id = m.standard_id""",
        f"""SELECT {key}, {RANK_SOURCE_VALUE}, {value}, nullif(c.system, 'OTHER'){text}
        FROM omop_{table} o LEFT JOIN rf_concept c ON c.concept_id = {source}
        WHERE nullif({value}, '') IS NOT NULL""",
        f"""SELECT DISTINCT s.key, {RANK_CONCEPT_SET} + cs.level, cs.root, cs.system{text}
        FROM ({standard}) s JOIN rf_concept_set cs ON cs.concept_id = s.concept_id""",
    ]
    if with_text:
        parts += [
            f"""SELECT {key}, {RANK_CONCEPT_NAME}, NULL, NULL, c.name
            FROM omop_{table} o JOIN rf_concept c ON c.concept_id IN ({concept}, {source})
            WHERE c.name IS NOT NULL""",
            f"""SELECT {key}, {RANK_SOURCE_TEXT}, NULL, NULL, {value} FROM omop_{table} o
            WHERE nullif({value}, '') IS NOT NULL""",
        ]
    return "\nUNION ALL\n".join(parts)


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
    con.execute(
        "INSERT INTO src_condition_code "
        + _concept_candidates(
            "condition_occurrence",
            "trim(o.condition_occurrence_id)",
            "condition",
            with_text=False,
        )
    )
    # Censoring: death (v5.3 and v5.4 both have death_date) and observation periods.
    if "death" in found:
        con.execute(
            """INSERT INTO src_patient_period
            SELECT trim(person_id), rf_date(coalesce(nullif(trim(death_date), ''), death_datetime)),
                   NULL, NULL
            FROM omop_death"""
        )
    if "observation_period" in found:
        con.execute(
            """INSERT INTO src_patient_period
            SELECT trim(person_id), NULL, rf_date(observation_period_start_date),
                   rf_date(observation_period_end_date)
            FROM omop_observation_period"""
        )
    # Conditions the CDM files as observations: the vocabulary puts history codes
    # (ICD-10-CM Z85 history of malignancy, Z87.891, ICD-9-CM V10, V15.82) in the
    # observation domain. An observation is a condition when one of its codes maps:
    # through the crosswalk, or as an ICD-10-CM code of a conditions.csv list.
    key = "'obs-' || trim(o.observation_id)"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE rf_obs_condition_code AS
        SELECT * FROM ({_concept_candidates("observation", key, "observation", with_text=False)})
            t(key, rank, code, system)"""
    )
    crosswalk = best_match_sql(
        "(SELECT *, NULL AS text FROM rf_obs_condition_code)", "key", CROSSWALK
    )
    con.execute(
        f"""DELETE FROM rf_obs_condition_code WHERE key NOT IN (
            SELECT key FROM ({crosswalk})
            UNION ALL
            SELECT c.key FROM rf_obs_condition_code c JOIN rf_vs v
              ON v.code_system = 'ICD10CM'
             AND NOT starts_with(v.value_set, {literal(CROSSWALK)})
             AND ((v.kind = 'exact' AND rf_norm_code(c.code) = v.code)
                  OR (v.kind = 'prefix' AND starts_with(rf_norm_code(c.code), v.code)))
            WHERE c.system = 'ICD10CM')"""
    )
    con.execute("INSERT INTO src_condition_code SELECT * FROM rf_obs_condition_code")
    con.execute(
        """INSERT INTO src_condition
        SELECT 'obs-' || trim(observation_id), trim(person_id),
               nullif(trim(visit_occurrence_id), ''), rf_date(observation_date)
        FROM omop_observation
        WHERE 'obs-' || trim(observation_id) IN (SELECT key FROM rf_obs_condition_code)"""
    )
    # Smoking: answer concepts (value, then the observation concept itself), then text.
    # An observation with a visit id is that visit's status.
    obs = "trim(o.observation_id), trim(o.person_id), rf_date(o.observation_date)"
    visit = "nullif(trim(o.visit_occurrence_id), '')"
    con.execute(
        f"""INSERT INTO src_smoking
        SELECT {obs}, 1, c.code, c.system, NULL, {visit}
        FROM omop_observation o JOIN rf_concept c ON c.concept_id = trim(o.value_as_concept_id)
        UNION ALL
        SELECT {obs}, 2, c.code, c.system, NULL, {visit}
        FROM omop_observation o JOIN rf_concept c ON c.concept_id = trim(o.observation_concept_id)
        UNION ALL
        SELECT {obs}, 3, NULL, NULL, value_as_string, {visit}
        FROM omop_observation o WHERE value_as_string <> ''
        UNION ALL
        SELECT {obs}, 4, NULL, NULL, value_source_value, {visit}
        FROM omop_observation o WHERE value_source_value <> ''
        UNION ALL
        SELECT {obs}, 5, NULL, NULL, observation_source_value, {visit}
        FROM omop_observation o WHERE observation_source_value <> ''
        UNION ALL
        SELECT {obs}, 6, trim(observation_source_value), NULL, NULL, {visit}
        FROM omop_observation o WHERE observation_source_value <> ''"""
    )
    # Smoking observations are those with a smoking answer or a tobacco-status question
    # (the latter, when their answer maps to nothing, are counted as unmapped).
    con.execute(
        f"""DELETE FROM src_smoking WHERE obs_key NOT IN (
            SELECT key FROM ({best_match_sql("src_smoking", "obs_key", SMOKING)})
            UNION ALL
            SELECT key FROM ({best_match_sql("src_smoking", "obs_key", TOBACCO)}))"""
    )
    _stage_answers(con, found)
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
            "INSERT INTO src_procedure_code "
            + _concept_candidates(
                table, f"{literal(key_prefix + '-')} || trim(o.{id_col})", prefix, with_text=True
            )
        )
    # Rows of measurement and observation that are no imaging order are not orders.
    con.execute(
        f"""DELETE FROM src_procedure WHERE NOT must_map AND proc_key NOT IN (
            SELECT key FROM ({best_match_sql("src_procedure_code", "proc_key", REFERRAL)}))"""
    )


def _stage_answers(con: duckdb.DuckDBPyConnection, found: dict[str, Path]) -> None:
    """The intake form of each visit: observations and notes with a visit id.

    An observation answers the question of its concepts and source value (which
    intake column, if any, says schemas/value_sets/intake_fields.csv): yes/no by its
    value concept or value_as_string, a number by value_as_number, a text by
    value_as_string. A note is the chief complaint when its class concept or its title
    says so (LOINC 10154-3, "Chief complaint"); its text is the answer.
    """
    key = "'obs-' || trim(o.observation_id)"
    con.execute(
        f"""INSERT INTO src_answer
        SELECT {key}, nullif(trim(o.visit_occurrence_id), ''), c.code, c.system,
               coalesce(nullif(trim(o.value_as_string), ''),
                        CAST(try_cast(o.value_as_number AS DOUBLE) AS VARCHAR))
        FROM omop_observation o LEFT JOIN rf_concept c
          ON c.concept_id = nullif(trim(o.value_as_concept_id), '0')
        WHERE nullif(trim(o.visit_occurrence_id), '') IS NOT NULL"""
    )
    con.execute(
        "INSERT INTO src_answer_code SELECT * FROM ("
        + _concept_candidates("observation", key, "observation", with_text=True)
        + ") t(key, rank, code, system, text) WHERE key IN (SELECT answer_key FROM src_answer)"
    )
    if "note" not in found:
        return
    key = "'note-' || trim(o.note_id)"
    con.execute(
        f"""INSERT INTO src_answer
        SELECT {key}, nullif(trim(o.visit_occurrence_id), ''), NULL, NULL, o.note_text
        FROM omop_note o WHERE nullif(trim(o.visit_occurrence_id), '') IS NOT NULL"""
    )
    con.execute(
        f"""INSERT INTO src_answer_code
        SELECT {key}, 1, c.code, c.system, NULL
        FROM omop_note o JOIN rf_concept c ON c.concept_id = trim(o.note_class_concept_id)
        UNION ALL
        SELECT {key}, 2, NULL, NULL, o.note_title FROM omop_note o
        WHERE nullif(trim(o.note_title), '') IS NOT NULL
        UNION ALL
        SELECT {key}, 3, trim(o.note_source_value), NULL, NULL FROM omop_note o
        WHERE nullif(trim(o.note_source_value), '') IS NOT NULL"""
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
        _concept(con, found)
        _stage(con, found)
        build_canonical(con, out_dir, report, pseudonymise=False)
    finally:
        con.close()
    return report
