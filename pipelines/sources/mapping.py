"""From source-neutral staging tables to the canonical intake, referrals and diagnoses.

The OMOP and FHIR adapters differ only in how they read their input; both fill the
same small staging tables in one DuckDB connection (below), and this module maps
them to the canonical contracts with SQL, reading every code from the value sets
in schemas/value_sets/. So a code list, a rule for age or the handling of a missing
date is written once for both sources.

Staging tables an adapter creates (temporary, keys are text):

    src_person(person_key, birth_year, birth_month, birth_day)
    src_person_code(person_key, rank, code, system)              -- sex
    src_visit(visit_key, person_key, visit_date)
    src_condition(condition_key, person_key, visit_key, condition_date)
    src_condition_code(condition_key, rank, code, system)
    src_smoking(obs_key, person_key, obs_date, rank, code, system, text, visit_key)
    src_procedure(proc_key, person_key, proc_date, origin, must_map, urgency_code)
    src_procedure_code(proc_key, rank, code, system, text)
    src_answer(answer_key, visit_key, value_code, value_system, value_text)  -- intake form
    src_answer_code(answer_key, rank, code, system, text)        -- what the answer answers
    src_patient_period(person_key, death_date, start_date, end_date)  -- censoring
    src_code_label(code, system, vocabulary, name)  -- optional: how the source names a code

Adapters read their input files into temporary tables (the staging tables above and
their own); `build_canonical` then shuts the connection's file access before any SQL
shaped by the data runs, and the canonical files are written by pyarrow.

`rank` orders a record's candidate codes (lower first: the best source of a code
first, free text last). `system` is a canonical code-system name (SNOMED, ICD10CM,
CPT, ... as in the value sets), `OTHER` for a system no value set knows, or NULL
when the source does not say (an OMOP source value), which then matches any system.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from pipelines import codes
from pipelines.contracts import load_contract
from pipelines.sources.report import AdapterReport
from pipelines.sqltext import identifier, literal
from pipelines.sqltext import path as sql_path
from pipelines.value_sets import load_value_sets
from pipelines.warehouse import refuse_file_access

# Value-set families, selected by name prefix (see schemas/value_sets/value_sets.yml).
CROSSWALK = "to_icd10cm:"
SYSTEM = "system_"
SEX = "sex_"
SMOKING = "smoking_"
TOBACCO = "tobacco_"
REFERRAL = "referral_"
MODALITY = "modality_"
REGION = "region_"
URGENCY = "urgency_"
INTAKE_FIELD = "intake_field:"
ANSWER_YES, ANSWER_NO = "answer_yes", "answer_no"
TEXT_SYSTEM = "TEXT"
# A code that has the shape of ICD-10-CM (letter, digit, digit or letter) passes
# into dx_codes unchanged when its source does not name its code system.
ICD10CM_SHAPE = "^[A-Z][0-9][0-9A-Z]"
# ICD-10-CM writes its dot after the third character; a dot after the fourth or later
# is ICD-9-CM's E code (E879.8, a misadventure), which has that shape once the dot is
# dropped (E8798) but is no ICD-10-CM code (E87.98).
NOT_ICD10CM_DOT = r"^[^.]{4,}\."
# ICD-9-CM's V codes (V15.82, history of tobacco use; V10.3) have the shape of
# ICD-10-CM too, but an ICD-10-CM V code (external cause) always has seven
# characters with letters (V00.01XA): a V, then two to four digits only, is ICD-9-CM.
ICD9CM_V_CODE = "^V[0-9]{2,4}$"
# An ICD-9-CM code: three digits, V and two digits, or E and three digits, then up to
# two more digits (compared without the dot). A code whose source names no system is
# matched against ICD-9-CM lists only when it has this shape: a SNOMED CT code is
# digits too, but never this short.
ICD9CM_SHAPE = "^([0-9]{3}|V[0-9]{2}|E[0-9]{3})[0-9]{0,2}$"
# Code systems of a referral's `code`: the canonical ones keep their name, HCPCS
# Level II codes become LOCAL; a match on anything else (a DICOM modality of an
# ImagingStudy, a text phrase) leaves `code` empty and gives modality and region only.
REFERRAL_CODE_SYSTEMS = ("CPT", "SNOMED", "ICD10PCS")
LOCAL_CODE_SYSTEMS = ("HCPCS",)
# Code systems of OMOP concept sets (schemas/value_sets/omop_concept_sets.csv): a root
# concept id alone, or with every descendant (concept_ancestor).
CONCEPT_SET_SYSTEMS = ("OMOP_CONCEPT", "OMOP_DESCENDANTS")
# Rows per Arrow batch of a canonical file: a Parquet row group each.
PARQUET_BATCH_ROWS = 122_880

STAGING_DDL = """
CREATE OR REPLACE TEMP TABLE src_person (
    person_key VARCHAR, birth_year INTEGER, birth_month INTEGER, birth_day INTEGER);
CREATE OR REPLACE TEMP TABLE src_person_code (
    person_key VARCHAR, rank INTEGER, code VARCHAR, system VARCHAR);
CREATE OR REPLACE TEMP TABLE src_visit (visit_key VARCHAR, person_key VARCHAR, visit_date DATE);
CREATE OR REPLACE TEMP TABLE src_condition (
    condition_key VARCHAR, person_key VARCHAR, visit_key VARCHAR, condition_date DATE);
CREATE OR REPLACE TEMP TABLE src_condition_code (
    condition_key VARCHAR, rank INTEGER, code VARCHAR, system VARCHAR);
CREATE OR REPLACE TEMP TABLE src_smoking (
    obs_key VARCHAR, person_key VARCHAR, obs_date DATE, rank INTEGER,
    code VARCHAR, system VARCHAR, text VARCHAR, visit_key VARCHAR);
CREATE OR REPLACE TEMP TABLE src_procedure (
    proc_key VARCHAR, person_key VARCHAR, proc_date DATE, origin VARCHAR,
    must_map BOOLEAN, urgency_code VARCHAR);
CREATE OR REPLACE TEMP TABLE src_procedure_code (
    proc_key VARCHAR, rank INTEGER, code VARCHAR, system VARCHAR, text VARCHAR);
CREATE OR REPLACE TEMP TABLE src_answer (
    answer_key VARCHAR, visit_key VARCHAR, value_code VARCHAR, value_system VARCHAR,
    value_text VARCHAR);
CREATE OR REPLACE TEMP TABLE src_answer_code (
    answer_key VARCHAR, rank INTEGER, code VARCHAR, system VARCHAR, text VARCHAR);
CREATE OR REPLACE TEMP TABLE src_patient_period (
    person_key VARCHAR, death_date DATE, start_date DATE, end_date DATE);
CREATE OR REPLACE TEMP TABLE src_code_label (
    code VARCHAR, system VARCHAR, vocabulary VARCHAR, name VARCHAR);
"""
# Unmapped codes listed per kind of record (most frequent first), for whoever fixes
# the value sets: the run summary, the Prefect artifact and ops.unmapped_codes.
TOP_UNMAPPED_CODES = 20
# The canonical patients table (one row per patient; DESIGN.md), in column order.
PATIENT_COLUMNS: dict[str, str] = {
    "patient_id": "VARCHAR",
    "death_date": "DATE",
    "observation_start_date": "DATE",
    "observation_end_date": "DATE",
}


def connect(out_dir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that spills to `out_dir/.spill` when a source outgrows memory."""
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET temp_directory = {sql_path(out_dir / '.spill')}")
    return con


def create_staging(con: duckdb.DuckDBPyConnection) -> None:
    """Create the empty staging tables, the value-set table and the SQL helpers."""
    con.execute(STAGING_DDL)
    register_value_sets(con)


def register_value_sets(con: duckdb.DuckDBPyConnection) -> None:
    """All value sets as one table `rf_vs`, codes normalised the way they are compared.

    kind: `exact`, `prefix` (code ended in `*`) or `text` (code_system TEXT: a phrase
    that matches when the source text contains it, compared lower case with only
    letters and digits kept, so "Chest X-ray" and "chest xray" are one phrase).
    """
    entries = load_value_sets()
    frame = pd.DataFrame(
        {
            "value_set": [e.value_set for e in entries],
            "code_system": [e.code_system for e in entries],
            "raw_code": [e.code for e in entries],
        }
    )
    is_text = frame["code_system"].eq(TEXT_SYSTEM)
    is_prefix = frame["raw_code"].str.endswith("*") & ~is_text
    frame["kind"] = "exact"
    frame.loc[is_prefix, "kind"] = "prefix"
    frame.loc[is_text, "kind"] = "text"
    frame["code"] = frame["raw_code"].str.rstrip("*").map(codes.normalize)
    frame.loc[is_text, "code"] = (
        frame.loc[is_text, "raw_code"].str.lower().str.replace(r"[^a-z0-9]", "", regex=True)
    )
    con.register("rf_vs_frame", frame[["value_set", "code_system", "code", "kind"]])
    con.execute("CREATE OR REPLACE TEMP TABLE rf_vs AS SELECT * FROM rf_vs_frame")
    con.unregister("rf_vs_frame")
    con.execute(f"CREATE OR REPLACE TEMP MACRO rf_norm_code(x) AS {codes.normalize_sql('x')}")
    con.execute(
        "CREATE OR REPLACE TEMP MACRO rf_norm_text(x) AS "
        "regexp_replace(lower(x), '[^a-z0-9]', '', 'g')"
    )
    # Dates as sources write them: ISO date or datetime (time and zone dropped) or YYYYMMDD.
    con.execute(
        "CREATE OR REPLACE TEMP MACRO rf_date(x) AS coalesce("
        "try_cast(left(trim(CAST(x AS VARCHAR)), 10) AS DATE), "
        "try_strptime(trim(CAST(x AS VARCHAR)), '%Y%m%d')::DATE)"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE rf_system AS
        SELECT code, substr(value_set, {len(SYSTEM) + 1}) AS system
        FROM rf_vs WHERE starts_with(value_set, {literal(SYSTEM)})"""
    )


def system_sql(raw: str) -> str:
    """SQL mapping a source's code-system name (FHIR URI, OMOP vocabulary_id) to ours."""
    return (
        f"CASE WHEN {raw} IS NULL THEN NULL ELSE coalesce("
        f"(SELECT s.system FROM rf_system s WHERE s.code = rf_norm_code({raw})), 'OTHER') END"
    )


def best_match_sql(candidates: str, key: str, family: str) -> str:
    """SQL: per key, the one value set of `family` its best candidate code falls in.

    Candidates are tried in rank order; within a rank an exact code beats a prefix,
    a prefix beats a text phrase, and a longer (more specific) entry beats a shorter.
    Returns columns key, value_set, code, system, rank (of the candidate that matched).
    """
    return f"""
    WITH c AS (
        SELECT {key} AS key, rank, code, system,
               rf_norm_code(code) AS ncode, rf_norm_text(text) AS ntext
        FROM {candidates}
    ), v AS (
        SELECT * FROM rf_vs WHERE starts_with(value_set, {literal(family)})
    ), m AS (
        SELECT c.key, v.value_set, c.code, coalesce(c.system, v.code_system) AS system,
               c.rank, 0 AS how, length(v.code) AS spec
        FROM c JOIN v ON c.ncode = v.code AND v.kind = 'exact'
        WHERE c.system = v.code_system OR (c.system IS NULL AND {_unnamed_fits("v")})
        UNION ALL
        SELECT c.key, v.value_set, c.code, coalesce(c.system, v.code_system), c.rank, 1,
               length(v.code)
        FROM c JOIN v ON v.kind = 'prefix' AND starts_with(c.ncode, v.code)
        WHERE c.system = v.code_system OR (c.system IS NULL AND {_unnamed_fits("v")})
        UNION ALL
        SELECT c.key, v.value_set, NULL, NULL, c.rank, 2, length(v.code)
        FROM c JOIN v ON v.kind = 'text' AND contains(c.ntext, v.code)
    )
    SELECT key, value_set, code, system, rank FROM m
    QUALIFY row_number() OVER (PARTITION BY key ORDER BY rank, how, spec DESC, value_set) = 1
    """


def _unnamed_fits(v: str) -> str:
    """SQL: whether a candidate whose system is unknown may match entry `v`: any entry,
    except that an ICD-9-CM entry needs a code of ICD-9-CM's shape."""
    return f"({v}.code_system <> 'ICD9CM' OR regexp_matches(c.ncode, {literal(ICD9CM_SHAPE)}))"


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])


def _suffix(column: str, family: str) -> str:
    return f"substr({column}, {len(family) + 1})"


def build_canonical(
    con: duckdb.DuckDBPyConnection, out_dir: Path, report: AdapterReport, *, pseudonymise: bool
) -> AdapterReport:
    """Map the staging tables to canonical Parquet files in out_dir and fill the report.

    `pseudonymise` replaces source keys by a hash (FHIR logical ids may be anything a
    server chose); OMOP keys are already surrogate integers and are kept, so a user
    can trace a row back to the CDM.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    # Every source file is in a temporary table by now: no SQL on this connection
    # reads or writes a file from here on (temporary tables still spill).
    refuse_file_access(con)
    ident = "left(sha256({}), 16)" if pseudonymise else "{}"
    con.execute(f"CREATE OR REPLACE TEMP MACRO rf_id(x) AS {ident.format('x')}")
    _map_conditions(con)
    _map_answers(con)
    _map_persons(con)
    _write_intake(con, out_dir, report)
    _write_referrals(con, out_dir, report)
    _write_diagnoses(con, out_dir, report)
    _write_patients(con, out_dir, report)
    _list_unmapped_codes(con, report)
    return report


def _map_conditions(con: duckdb.DuckDBPyConnection) -> None:
    """Each condition's ICD-10-CM code and its visit.

    A code the source gives as ICD-10-CM wins over one reached through the crosswalk
    (ICD-9-CM, SNOMED -> ICD-10-CM), whatever their order in the source.
    """
    crosswalk = best_match_sql(
        "(SELECT *, NULL AS text FROM src_condition_code)", "condition_key", CROSSWALK
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE rf_condition_icd AS
        WITH own AS (
            SELECT condition_key AS key, rank, 0 AS how, upper(trim(code)) AS icd10cm
            FROM src_condition_code
            WHERE system = 'ICD10CM'
               OR (system IS NULL AND regexp_matches(rf_norm_code(code), {literal(ICD10CM_SHAPE)})
                   AND NOT regexp_matches(trim(code), {literal(NOT_ICD10CM_DOT)})
                   AND NOT regexp_matches(rf_norm_code(code), {literal(ICD9CM_V_CODE)}))
        ), crossed AS (
            SELECT key, rank, 1 AS how, {_suffix("value_set", CROSSWALK)} AS icd10cm
            FROM ({crosswalk})
        )
        SELECT key AS condition_key, icd10cm
        FROM (SELECT * FROM own UNION ALL SELECT * FROM crossed)
        QUALIFY row_number() OVER (PARTITION BY key ORDER BY how, rank) = 1"""
    )
    # A condition without a visit belongs to the person's visit on the same date, if any.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE rf_condition AS
        SELECT c.condition_key, c.person_key, c.condition_date,
               coalesce(c.visit_key, (
                   SELECT min(v.visit_key) FROM src_visit v
                   WHERE v.person_key = c.person_key AND v.visit_date = c.condition_date
               )) AS visit_key,
               i.icd10cm
        FROM src_condition c LEFT JOIN rf_condition_icd i USING (condition_key)"""
    )


def _map_answers(con: duckdb.DuckDBPyConnection) -> None:
    """`rf_answer(visit_key, field, value)`: what the visit's intake form recorded.

    An answer's question (its codes, then text) names the intake column it fills
    through the `intake_field:<column>` value sets; one answer per visit and column
    is kept (the lowest key). A yes/no answer is 'true' or 'false' when its value is
    in `answer_yes` / `answer_no` (the SNOMED qualifier, or the words yes, no, true,
    false), and is dropped when it is neither: an answer nobody can read is not a
    "no". Other values are kept as text and typed by the intake contract.
    """
    field = best_match_sql("src_answer_code", "answer_key", INTAKE_FIELD)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE rf_answer AS
        WITH yes_no AS (
            SELECT a.answer_key, bool_and(v.value_set = {literal(ANSWER_YES)}) AS yes
            FROM src_answer a JOIN rf_vs v
              ON v.value_set IN ({literal(ANSWER_YES)}, {literal(ANSWER_NO)})
             AND ((v.code_system = coalesce(a.value_system, v.code_system)
                   AND v.code = rf_norm_code(a.value_code))
                  OR (v.code_system = 'ANSWER' AND v.code = rf_norm_code(a.value_text)))
            GROUP BY a.answer_key HAVING count(DISTINCT v.value_set) = 1
        )
        SELECT a.visit_key, {_suffix("f.value_set", INTAKE_FIELD)} AS field,
               CAST(y.yes AS VARCHAR) AS yes_no, nullif(trim(a.value_text), '') AS value
        FROM src_answer a
        JOIN ({field}) f ON f.key = a.answer_key
        LEFT JOIN yes_no y USING (answer_key)
        WHERE a.visit_key IS NOT NULL
        QUALIFY row_number() OVER (
            PARTITION BY a.visit_key, field ORDER BY a.answer_key) = 1"""
    )


def _map_persons(con: duckdb.DuckDBPyConnection) -> None:
    """Sex of each person through the sex_* value sets; U when nothing maps."""
    sex = best_match_sql("(SELECT *, NULL AS text FROM src_person_code)", "person_key", SEX)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE rf_person AS
        SELECT p.person_key, p.birth_year, p.birth_month, p.birth_day,
               {_suffix("s.value_set", SEX)} AS sex
        FROM src_person p LEFT JOIN ({sex}) s ON s.key = p.person_key"""
    )


def _age_sql() -> str:
    """Whole years at the visit from birth year (and month, day when known), capped."""
    cap = load_contract("intake").column("age_years").cap
    before_birthday = (
        "(p.birth_month IS NOT NULL AND (month(v.visit_date) < p.birth_month "
        "OR (month(v.visit_date) = p.birth_month AND p.birth_day IS NOT NULL "
        "AND day(v.visit_date) < p.birth_day)))"
    )
    age = f"year(v.visit_date) - p.birth_year - CASE WHEN {before_birthday} THEN 1 ELSE 0 END"
    return f"least({age}, {cap})"


def _write_intake(con: duckdb.DuckDBPyConnection, out_dir: Path, report: AdapterReport) -> None:
    """One intake row per visit with at least one condition or intake-form answer."""
    contract = load_contract("intake")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE rf_visit AS
        SELECT v.visit_key, v.person_key, v.visit_date,
               p.person_key IS NOT NULL AS has_person, p.birth_year, p.sex,
               CASE WHEN p.birth_year IS NOT NULL AND v.visit_date IS NOT NULL
                    THEN {_age_sql()} END AS age_years
        FROM src_visit v LEFT JOIN rf_person p USING (person_key)
        WHERE v.visit_key IN (SELECT visit_key FROM rf_condition)
           OR v.visit_key IN (SELECT visit_key FROM rf_answer)"""
    )
    rejected = {
        "visits_without_date": "visit_date IS NULL",
        "visits_without_person": "visit_date IS NOT NULL AND NOT has_person",
        "visits_of_persons_without_birth_year": (
            "visit_date IS NOT NULL AND has_person AND birth_year IS NULL"
        ),
        "visits_before_birth": "visit_date IS NOT NULL AND age_years < 0",
    }
    for name, where in rejected.items():
        report.rejected[name] = _count(con, f"SELECT count(*) FROM rf_visit WHERE {where}")
    report.rejected["persons_without_birth_year"] = _count(
        con, "SELECT count(*) FROM src_person WHERE birth_year IS NULL"
    )
    report.unmapped["persons_sex_unknown"] = _count(
        con, "SELECT count(*) FROM rf_person WHERE sex IS NULL"
    )
    report.unmapped["conditions_without_icd10cm"] = _count(
        con, "SELECT count(*) FROM rf_condition WHERE icd10cm IS NULL"
    )
    report.unmapped["conditions_without_visit"] = _count(
        con,
        "SELECT count(*) FROM rf_condition WHERE visit_key IS NULL "
        "OR visit_key NOT IN (SELECT visit_key FROM src_visit)",
    )

    # back_pain, prior_cancer and the symptom columns are what the intake form says
    # (rf_answer), never set from a code: the contract's NULL means "derive it from the
    # codes", which scoring does for every source alike, and a flag copied from a code
    # would count as documented in the documentation-quality mart.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE rf_visit_dx AS
        SELECT visit_key, string_agg(DISTINCT icd10cm, ';' ORDER BY icd10cm) AS dx_codes
        FROM rf_condition WHERE icd10cm IS NOT NULL GROUP BY visit_key"""
    )
    # Smoking: an observation recorded at a visit is that visit's status, and says
    # nothing of later visits (a visit where nobody asked is NULL, as in the intake
    # form). An observation recorded outside any visit carries forward: the latest
    # on or before the visit date.
    smoking = best_match_sql("src_smoking", "obs_key", SMOKING)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE rf_smoking_obs AS
        SELECT s.person_key, s.obs_date, s.visit_key, {_suffix("m.value_set", SMOKING)} AS status,
               s.obs_key
        FROM ({smoking}) m
        JOIN (SELECT DISTINCT obs_key, person_key, obs_date, visit_key FROM src_smoking
              WHERE obs_date IS NOT NULL) s ON s.obs_key = m.key"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE rf_smoking AS
        SELECT person_key, obs_date, status FROM rf_smoking_obs WHERE visit_key IS NULL
        QUALIFY row_number() OVER (PARTITION BY person_key, obs_date ORDER BY obs_key DESC) = 1"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE rf_visit_smoking AS
        SELECT visit_key, status FROM rf_smoking_obs WHERE visit_key IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY visit_key ORDER BY obs_key DESC) = 1"""
    )
    # The intake form's answers, one column each (_map_answers).
    # A number written through floating point (OMOP value_as_number 7.0) is the
    # integer it holds; a value that fits no type is NULL.
    answered = {
        c.name: c.duckdb_type
        for c in contract.columns
        if _has_value_set(con, INTAKE_FIELD + c.name)
    }
    typed = {
        "BOOLEAN": "try_cast(any_value(yes_no) {} AS BOOLEAN)",
        "INTEGER": "try_cast(try_cast(any_value(value) {} AS DOUBLE) AS INTEGER)",
    }
    answer_columns = ", ".join(
        typed.get(t, "any_value(value) {}").format(f"FILTER (WHERE field = {literal(c)})")
        + f" AS {identifier(c)}"
        for c, t in answered.items()
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE rf_visit_answers AS
        SELECT visit_key, {answer_columns} FROM rf_answer GROUP BY visit_key"""
    )
    report.unmapped["smoking_observations"] = _count(
        con,
        "SELECT count(DISTINCT obs_key) FROM src_smoking WHERE obs_key NOT IN "
        f"(SELECT key FROM ({smoking}))",
    )
    computed = {
        "encounter_id": "rf_id(v.visit_key)",
        "patient_id": "rf_id(v.person_key)",
        "encounter_date": "v.visit_date",
        "age_years": "v.age_years",
        "sex": "coalesce(v.sex, 'U')",
        "smoking_status": "coalesce(vs.status, s.status)",
        "dx_codes": "d.dx_codes",
        **{c: f"a.{c}" for c in answered},
    }
    select = _contract_select(contract.table, computed)
    report.mapped["intake"] = _write_parquet(
        con,
        f"""SELECT {select}
            FROM rf_visit v
            ASOF LEFT JOIN rf_smoking s
              ON s.person_key = v.person_key AND v.visit_date >= s.obs_date
            LEFT JOIN rf_visit_smoking vs ON vs.visit_key = v.visit_key
            LEFT JOIN rf_visit_answers a ON a.visit_key = v.visit_key
            LEFT JOIN rf_visit_dx d ON d.visit_key = v.visit_key
            WHERE v.visit_date IS NOT NULL AND v.age_years >= 0 AND v.has_person
            ORDER BY encounter_date, encounter_id""",
        out_dir / "intake.parquet",
    )


def _write_referrals(con: duckdb.DuckDBPyConnection, out_dir: Path, report: AdapterReport) -> None:
    """Imaging and biopsy orders: type, modality, region and code through the value sets.

    The order's code is the code that gave its type; when an OMOP concept set gave
    the type, the record's best code of a referral code system (its concept's CPT or
    SNOMED code), so the order stays traceable.
    """
    contract = load_contract("referrals")
    kind = best_match_sql("src_procedure_code", "proc_key", REFERRAL)
    modality = best_match_sql("src_procedure_code", "proc_key", MODALITY)
    region = best_match_sql("src_procedure_code", "proc_key", REGION)
    urgency = best_match_sql(
        "(SELECT proc_key, 1 AS rank, urgency_code AS code, 'FHIR' AS system, NULL AS text "
        "FROM src_procedure WHERE urgency_code IS NOT NULL)",
        "proc_key",
        URGENCY,
    )
    systems = ", ".join(literal(s) for s in REFERRAL_CODE_SYSTEMS)
    local = ", ".join(literal(s) for s in LOCAL_CODE_SYSTEMS)
    concept_sets = ", ".join(literal(s) for s in CONCEPT_SET_SYSTEMS)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE rf_referral AS
        SELECT p.proc_key, p.person_key, p.proc_date, p.origin, p.must_map,
               {_suffix("k.value_set", REFERRAL)} AS referral_type,
               {_suffix("m.value_set", MODALITY)} AS modality,
               {_suffix("r.value_set", REGION)} AS body_region,
               CASE WHEN k.system IN ({systems}, {local}) THEN k.code
                    WHEN k.system IN ({concept_sets}) THEN b.code END AS code,
               CASE WHEN k.system IN ({systems}) THEN k.system
                    WHEN k.system IN ({local}) THEN 'LOCAL'
                    WHEN k.system IN ({concept_sets}) THEN b.system END AS code_system,
               {_suffix("u.value_set", URGENCY)} AS urgency
        FROM src_procedure p
        LEFT JOIN ({kind}) k ON k.key = p.proc_key
        LEFT JOIN ({modality}) m ON m.key = p.proc_key
        LEFT JOIN ({region}) r ON r.key = p.proc_key
        LEFT JOIN ({urgency}) u ON u.key = p.proc_key
        LEFT JOIN (
            SELECT proc_key, code,
                   CASE WHEN system IN ({local}) THEN 'LOCAL' ELSE system END AS system
            FROM src_procedure_code WHERE system IN ({systems}, {local}) AND code <> ''
            QUALIFY row_number() OVER (PARTITION BY proc_key ORDER BY rank, code) = 1
        ) b ON b.proc_key = p.proc_key"""
    )
    report.unmapped["procedures_not_imaging_or_biopsy"] = _count(
        con, "SELECT count(*) FROM rf_referral WHERE must_map AND referral_type IS NULL"
    )
    report.rejected["referrals_without_date"] = _count(
        con,
        "SELECT count(*) FROM rf_referral WHERE referral_type IS NOT NULL AND proc_date IS NULL",
    )
    # The same order often appears twice (an OMOP procedure and its measurement, a
    # FHIR Procedure and its ImagingStudy): one referral per patient, day and kind,
    # the one with a code kept.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE rf_referral_kept AS
        SELECT * FROM rf_referral WHERE referral_type IS NOT NULL AND proc_date IS NOT NULL
        QUALIFY row_number() OVER (
            PARTITION BY person_key, proc_date, referral_type, modality, body_region
            ORDER BY code IS NULL, origin, proc_key) = 1"""
    )
    report.rejected["referrals_merged_as_duplicates"] = _count(
        con,
        "SELECT (SELECT count(*) FROM rf_referral WHERE referral_type IS NOT NULL "
        "AND proc_date IS NOT NULL) - (SELECT count(*) FROM rf_referral_kept)",
    )
    computed = {
        "referral_id": "rf_id(proc_key)",
        "patient_id": "rf_id(person_key)",
        "referral_date": "proc_date",
        "referral_type": "referral_type",
        "modality": "modality",
        "body_region": "body_region",
        "code": "code",
        "code_system": "code_system",
        "urgency": "urgency",
    }
    report.mapped["referrals"] = _write_parquet(
        con,
        f"SELECT {_contract_select(contract.table, computed)} FROM rf_referral_kept "
        "ORDER BY referral_date, referral_id",
        out_dir / "referrals.parquet",
    )


def _write_diagnoses(con: duckdb.DuckDBPyConnection, out_dir: Path, report: AdapterReport) -> None:
    """One diagnosis per condition: its ICD-10-CM code, else its SNOMED code."""
    contract = load_contract("diagnoses")
    con.execute(
        """CREATE OR REPLACE TEMP TABLE rf_diagnosis AS
        SELECT c.person_key, c.condition_date,
               coalesce(c.icd10cm, s.code) AS code,
               CASE WHEN c.icd10cm IS NOT NULL THEN 'ICD10CM'
                    WHEN s.code IS NOT NULL THEN 'SNOMED' END AS code_system
        FROM rf_condition c
        LEFT JOIN (
            SELECT condition_key, trim(code) AS code FROM src_condition_code
            WHERE system = 'SNOMED'
            QUALIFY row_number() OVER (PARTITION BY condition_key ORDER BY rank) = 1
        ) s USING (condition_key)"""
    )
    report.unmapped["conditions_without_diagnosis_code"] = _count(
        con, "SELECT count(*) FROM rf_diagnosis WHERE code IS NULL"
    )
    report.rejected["conditions_without_date"] = _count(
        con, "SELECT count(*) FROM rf_diagnosis WHERE code IS NOT NULL AND condition_date IS NULL"
    )
    computed = {
        "patient_id": "rf_id(person_key)",
        "diagnosis_date": "condition_date",
        "code": "code",
        "code_system": "code_system",
    }
    report.mapped["diagnoses"] = _write_parquet(
        con,
        f"SELECT DISTINCT {_contract_select(contract.table, computed)} FROM rf_diagnosis "
        "WHERE code IS NOT NULL AND condition_date IS NOT NULL "
        "ORDER BY patient_id, diagnosis_date, code",
        out_dir / "diagnoses.parquet",
    )


def _write_patients(con: duckdb.DuckDBPyConnection, out_dir: Path, report: AdapterReport) -> None:
    """`patients.parquet`: when follow-up of each patient ends, for those the source says.

    A patient with several observation periods is observed from the first start to the
    last end (the gaps are not modelled); with several death records, the earliest
    counts. Patients the source says nothing of get no row: no row means unknown.
    """
    report.rejected["patient_periods_without_person"] = _count(
        con,
        "SELECT count(*) FROM src_patient_period "
        "WHERE person_key NOT IN (SELECT person_key FROM src_person)",
    )
    report.rejected["observation_periods_ending_before_start"] = _count(
        con, "SELECT count(*) FROM src_patient_period WHERE end_date < start_date"
    )
    columns = ", ".join(f"CAST({{}} AS {t}) AS {c}" for c, t in PATIENT_COLUMNS.items())
    report.mapped["patients"] = _write_parquet(
        con,
        f"""SELECT {
            columns.format(
                "rf_id(person_key)", "min(death_date)", "min(start_date)", "max(end_date)"
            )
        }
        FROM src_patient_period
        WHERE person_key IN (SELECT person_key FROM src_person)
          AND NOT coalesce(end_date < start_date, FALSE)
        GROUP BY person_key
        HAVING count(death_date) + count(start_date) + count(end_date) > 0
        ORDER BY patient_id""",
        out_dir / "patients.parquet",
    )


def _list_unmapped_codes(con: duckdb.DuckDBPyConnection, report: AdapterReport) -> None:
    """The codes of the records counted as unmapped, most frequent first, per kind.

    A record is listed under its best candidate code (lowest rank; free text is never
    listed, it may hold anything), with the source's vocabulary and name for the code
    when the source has them (src_code_label: the OMOP concept table), else our name
    of its code system, else "unknown". A record with no code at all is listed with
    code NULL, so the counts add up to the report's unmapped counts (OMOP's concept 0,
    "no matching concept", is no code).
    """
    concept_sets = ", ".join(literal(s) for s in CONCEPT_SET_SYSTEMS)
    smoking = best_match_sql("src_smoking", "obs_key", SMOKING)
    unmapped = {
        "condition": (
            "SELECT condition_key AS key FROM rf_condition WHERE icd10cm IS NULL",
            "SELECT condition_key AS key, rank, code, system FROM src_condition_code",
        ),
        "procedure": (
            "SELECT proc_key FROM rf_referral WHERE must_map AND referral_type IS NULL",
            "SELECT proc_key, rank, code, system FROM src_procedure_code",
        ),
        "smoking": (
            f"SELECT DISTINCT obs_key FROM src_smoking WHERE obs_key NOT IN "
            f"(SELECT key FROM ({smoking}))",
            "SELECT obs_key, rank, code, system FROM src_smoking",
        ),
        "sex": (
            "SELECT person_key FROM rf_person WHERE sex IS NULL",
            "SELECT person_key, rank, code, system FROM src_person_code",
        ),
    }
    union = "\nUNION ALL\n".join(
        f"""SELECT {literal(kind)} AS kind, u.key, b.code, b.system
        FROM ({records}) u(key) LEFT JOIN (
            SELECT * FROM ({candidates}) c(key, rank, code, system)
            WHERE nullif(trim(code), '') IS NOT NULL AND trim(code) <> '0'
              AND coalesce(system, '') NOT IN ({concept_sets})
            QUALIFY row_number() OVER (PARTITION BY key ORDER BY rank, code) = 1
        ) b ON b.key = u.key"""
        for kind, (records, candidates) in unmapped.items()
    )
    listed = con.execute(
        f"""WITH u AS ({union}),
        counted AS (
            SELECT kind, trim(code) AS code, system, count(*) AS rows FROM u
            GROUP BY ALL
        ), label AS (
            SELECT code, system, any_value(vocabulary) AS vocabulary, any_value(name) AS name
            FROM src_code_label GROUP BY ALL
        )
        SELECT c.kind, coalesce(l.vocabulary, nullif(c.system, 'OTHER'), 'unknown'),
               c.code, l.name, c.rows
        FROM counted c LEFT JOIN label l
          ON l.code = c.code AND (c.system IS NULL OR l.system = c.system)
        QUALIFY row_number() OVER (PARTITION BY c.kind, c.code, c.system ORDER BY l.vocabulary) = 1
            AND row_number() OVER (
                PARTITION BY c.kind ORDER BY c.rows DESC, c.code NULLS LAST) <= {TOP_UNMAPPED_CODES}
        ORDER BY c.kind, c.rows DESC, c.code NULLS LAST"""
    ).fetchall()
    report.unmapped_codes = [
        {"kind": k, "vocabulary": v, "code": c, "name": n, "rows": int(r)}
        for k, v, c, n, r in listed
    ]


def _write_parquet(con: duckdb.DuckDBPyConnection, select: str, path: Path) -> int:
    """The rows of `select` into a Parquet file, written by pyarrow; returns the rows written."""
    import pyarrow.parquet as pq

    written = 0
    with (
        con.sql(select).to_arrow_reader(batch_size=PARQUET_BATCH_ROWS) as batches,
        pq.ParquetWriter(path, batches.schema) as writer,
    ):
        for batch in batches:
            writer.write_batch(batch)
            written += batch.num_rows
    return written


def _has_value_set(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return _count(con, f"SELECT count(*) FROM rf_vs WHERE value_set = {literal(name)}") > 0


def _contract_select(table: str, computed: dict[str, str]) -> str:
    """Every contract column in order, typed; columns the source cannot fill are NULL."""
    contract = load_contract(table)
    return ", ".join(
        f"CAST({computed.get(c.name, 'NULL')} AS {c.duckdb_type}) AS {c.name}"
        for c in contract.columns
    )
