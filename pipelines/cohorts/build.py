"""Render the cohort and mart SQL from cohorts.yml and run it; publish the marts at once.

`build_cohorts` runs the steps of BUILD_STEPS: the models of sql/cohorts/ (int_/fct_/dim_
models in `cohorts`, an in-memory database attached for the build: nothing there needs
to outlive it, and not writing it to the warehouse file halves the build time) and the
marts of sql/marts/, built as scratch tables `marts._build_<mart>` of the warehouse. The
wide index_presentations mart is built among the cohort models, and the counts read it
(cohorts.fct_index_presentations is a view of it). `publish_marts` drops each mart and
renames its scratch table in its place inside one transaction, with COMMENT ON from
docs/marts.md, and records the run in ops.run_log, so a reader sees the old marts or
the new ones, never a mix. Renaming, not copying: DuckDB cannot move a table to
another schema, and copying the marts again cost as much as building them.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.cohorts.definition import CohortDefinition, Outcome, load_definition
from pipelines.cohorts.docs import column_comment, load_mart_docs
from pipelines.errors import UserError
from pipelines.paths import SQL_DIR
from pipelines.warehouse import create_schemas, load_value_sets_table

COHORT_SCHEMA = "cohorts"
MARTS_SCHEMA = "marts"
# A mart is built as marts.<BUILD_PREFIX><mart> and renamed to marts.<mart> on publishing.
BUILD_PREFIX = "_build_"
BUILD_INFO = f"{MARTS_SCHEMA}.{BUILD_PREFIX}info"
# Where builds before BUILD_PREFIX kept their scratch tables; dropped if still there.
LEGACY_BUILD_SCHEMA = "marts_build"

# Run order: each step (sql/<layer>/<name>.sql) reads only the ones before it. The
# index_presentations mart is built among the cohort models: the counts and the other
# marts read it (the view cohorts.fct_index_presentations), so that the one wide table
# is written once, to the warehouse, and not also held in memory.
BUILD_STEPS: tuple[tuple[str, str], ...] = (
    ("cohorts", "wilson_interval"),
    ("cohorts", "int_data_end"),
    ("cohorts", "int_referrals_classified"),
    ("cohorts", "int_referral_outcomes"),
    ("cohorts", "int_back_pain_presentations"),
    ("cohorts", "int_washout"),
    ("cohorts", "int_episodes"),
    ("cohorts", "int_episode_max_tier"),
    ("cohorts", "fct_index_outcomes"),
    ("cohorts", "int_index_presentations"),
    ("cohorts", "int_followup"),
    ("marts", "index_presentations"),
    ("cohorts", "fct_index_presentations"),
    ("cohorts", "int_red_flag_patterns"),
    ("cohorts", "fct_stratum_outcome_days"),
    ("marts", "cohort_summary"),
    ("marts", "time_to_referral"),
    ("marts", "care_gaps"),
    ("marts", "imaging_overuse"),
    ("marts", "rule_performance"),
    ("marts", "documentation_quality"),
)
# Publishing order.
MARTS: tuple[str, ...] = tuple(name for layer, name in BUILD_STEPS if layer == "marts")
# Columns a scratch mart carries for the models that read it while the build runs, not
# published: dropped at the end of the build (a catalog change; no data is rewritten).
WORKING_COLUMNS: dict[str, tuple[str, ...]] = {
    "index_presentations": ("red_flag_mask", "presentation_key"),
}
# red_flag_mask and outcome_mask are BIGINTs with one bit per red flag, per outcome
MAX_MASK_BITS = 62
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def render(sql: str, context: dict[str, str], name: str = "model") -> str:
    """Fill `{{ name }}` placeholders; a placeholder without a value is a bug, said loudly."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in context:
            raise KeyError(f"{name}: no value for placeholder {{{{ {key} }}}}")
        return context[key]

    return _PLACEHOLDER.sub(value, sql)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bits(names: tuple[str, ...], what: str, held_by: str) -> dict[str, int]:
    """1, 2, 4, ... for `names` in order: one bit each of a BIGINT mask, said if too many."""
    if len(names) > MAX_MASK_BITS:
        raise UserError(
            f"cohorts.yml lists {len(names)} {what}; {held_by} holds at most "
            f"{MAX_MASK_BITS} (one bit each of a BIGINT): remove some"
        )
    return {name: 1 << position for position, name in enumerate(names)}


def red_flag_bits(definition: CohortDefinition) -> dict[str, int]:
    """The bit of each red flag in red_flag_mask, in the fixed flag order."""
    return _bits(definition.red_flags, "red flags", "red_flag_mask (the pattern strata)")


def outcome_bits(definition: CohortDefinition) -> dict[str, int]:
    """The bit of each outcome in a referral's outcome_mask, in the order of cohorts.yml."""
    return _bits(definition.outcome_names, "outcomes", "a referral's outcome_mask")


def _outcome_test(outcome: Outcome, referral: str = "r") -> str:
    """SQL that is TRUE when referral `referral` is an event of `outcome` (cohorts.yml)."""
    tests = [f"{referral}.referral_type = {_quote(outcome.referral_type)}"]
    for column in ("modality", "body_region"):
        value = getattr(outcome, column)
        if value is not None:  # a NULL criterion matches anything
            tests.append(f"{referral}.{column} = {_quote(value)}")
    return " AND ".join(tests)


def render_context(
    definition: CohortDefinition, data_end: date | None, warehouse: str = "memory"
) -> dict[str, str]:
    """The SQL fragments cohorts.yml decides: lists of flags, outcome columns, numbers.

    `warehouse` is the catalog name of the warehouse: the views of the in-memory
    `cohorts` database name its tables with it, as a view resolves names in its own
    database otherwise.
    """
    flags = definition.red_flags
    outcomes = definition.outcome_names
    end = data_end or definition.data_end
    overuse = definition.section("overuse")
    documented = definition.section("documentation_quality")["fields"]
    km = definition.section("time_to_referral")
    max_window = max(definition.windows)
    return {
        "data_end": f"DATE {_quote(end.isoformat())}" if end else "NULL",
        "washout_days": str(definition.washout_days),
        "max_tier_days": str(definition.max_tier_days),
        "washout_covers_max_tier_days": str(
            definition.washout_days >= definition.max_tier_days
        ).upper(),
        "age_band_other": _quote(definition.age_band_other),
        "red_flag_names": ", ".join(flags),
        "red_flag_columns_f": ", ".join(f"f.{f}" for f in flags),
        "red_flag_definitions": ",\n    ".join(
            f"{f} BOOLEAN USING COMPRESSION roaring" for f in flags
        ),
        "red_flag_mask_f": "\n        + ".join(
            f"CASE WHEN f.{f} THEN {bit} ELSE 0 END" for f, bit in red_flag_bits(definition).items()
        ),
        "warehouse": _quote_identifier(warehouse),
        "referral_outcome_mask": "\n        + ".join(
            f"CASE WHEN {_outcome_test(o)} THEN {outcome_bits(definition)[o.name]} ELSE 0 END"
            for o in definition.outcomes
        ),
        "days_to_outcome_pivot": ",\n    ".join(
            f"min(e.referral_date) FILTER (WHERE e.outcome_mask & {bit} <> 0) - i.encounter_date"
            f" AS days_to_{o}"
            for o, bit in outcome_bits(definition).items()
        ),
        "days_to_outcome_columns": ", ".join(f"d.days_to_{o}" for o in outcomes),
        "days_to_outcome_names": ", ".join(f"days_to_{o}" for o in outcomes),
        "days_to_outcome_definitions": ",\n    ".join(f"days_to_{o} BIGINT" for o in outcomes),
        "days_to_outcome_as_outcome": ", ".join(f"days_to_{o} AS {o}" for o in outcomes),
        "outcome_names": ", ".join(outcomes),
        # fct_stratum_outcome_days: per outcome, the index presentations (per_index, its
        # days_to_<outcome> as a column named for the outcome) with an event within the
        # longest window, one row each
        "outcome_event_rows": "\n    UNION ALL BY NAME\n    ".join(
            f"SELECT * EXCLUDE ({', '.join(outcomes)}), {_quote(o)} AS outcome,"
            f" {o} AS days_to_event FROM per_index WHERE {o} <= {max_window}"
            for o in outcomes
        ),
        # the days to the outcome a care gap expects (g.outcome) of an index presentation i
        "days_to_gap_outcome": "CASE g.outcome "
        + " ".join(f"WHEN {_quote(o)} THEN i.days_to_{o}" for o in outcomes)
        + " END",
        # the days to the Kaplan-Meier outcome of i (load_definition checked the name)
        "days_to_km_outcome": f"i.days_to_{km['outcome']}",
        "max_window": str(max_window),
        "z": repr(definition.z),
        "km_outcome": km["outcome"],
        "max_day": str(int(km["max_day"])),
        "overuse_tier": overuse["index_tier"],
        "overuse_min_age": str(int(overuse["min_age"])),
        "overuse_max_age": str(int(overuse["max_age"])),
        "overuse_window": str(int(overuse["window_days"])),
        # the days to the first of the overuse outcomes of i (NULL when none of them)
        "days_to_overuse_outcome": "least("
        + ", ".join(f"i.days_to_{o}" for o in overuse["outcomes"])
        + ")",
        "rule_within_days": str(int(definition.section("rule_performance")["within_days"])),
        "documented_counts": ",\n        ".join(f"count(i.{c}) AS {c}" for c in documented),
        "documented_names": ", ".join(documented),
    }


def _ranked(values: list[str] | tuple[str, ...], name: str, rank: str) -> pd.DataFrame:
    return pd.DataFrame({name: list(values), rank: range(1, len(values) + 1)})


def dimension_tables(definition: CohortDefinition) -> dict[str, pd.DataFrame]:
    """The small lookup tables (dim_*) the models join to, straight from cohorts.yml."""
    bands = definition.age_bands
    gaps = definition.section("care_gaps")["definitions"]
    targets = definition.section("rule_performance")["targets"]
    thresholds = definition.section("rule_performance").get(
        "tier_thresholds", list(definition.tiers[:-1])
    )
    tiers = _ranked(definition.tiers, "tier", "tier_rank")
    flags = _ranked(definition.red_flags, "flag", "flag_rank").assign(
        flag_bit=lambda frame: pd.Series(
            [red_flag_bits(definition)[f] for f in frame["flag"]], dtype="int64"
        )
    )
    band_frame = pd.DataFrame(
        {
            "age_band": [b[0] for b in bands],
            "min_age": [b[1] for b in bands],
            "max_age": [b[2] for b in bands],
            "band_rank": range(1, len(bands) + 1),
        }
    )
    stratum_values = pd.concat(
        [
            tiers.rename(columns={"tier": "stratum_value", "tier_rank": "value_rank"}).assign(
                stratum_type="index_tier"
            ),
            tiers.rename(columns={"tier": "stratum_value", "tier_rank": "value_rank"}).assign(
                stratum_type="episode_max_tier"
            ),
            flags.drop(columns="flag_bit")
            .rename(columns={"flag": "stratum_value", "flag_rank": "value_rank"})
            .assign(stratum_type="flag"),
            band_frame[["age_band", "band_rank"]]
            .rename(columns={"age_band": "stratum_value", "band_rank": "value_rank"})
            .assign(stratum_type="age_band"),
        ]
    )[["stratum_type", "stratum_value", "value_rank"]]
    return {
        "dim_tiers": tiers,
        "dim_windows": pd.DataFrame(
            {"window_days": pd.Series(list(definition.windows), dtype="int32")}
        ),
        "dim_outcomes": pd.DataFrame(
            {
                "outcome": [o.name for o in definition.outcomes],
                "referral_type": [o.referral_type for o in definition.outcomes],
                "modality": pd.Series([o.modality for o in definition.outcomes], dtype=object),
                "body_region": pd.Series(
                    [o.body_region for o in definition.outcomes], dtype=object
                ),
                "outcome_rank": range(1, len(definition.outcomes) + 1),
            }
        ),
        "dim_red_flags": flags,
        "dim_age_bands": band_frame,
        # one row per whole year of age in a band: ages are whole numbers, and an equality
        # join on them is a hash join where BETWEEN min_age AND max_age is a nested loop
        "dim_age_band_years": pd.DataFrame(
            [(age, b[0]) for b in bands for age in range(b[1], b[2] + 1)],
            columns=["age_years", "age_band"],
        ).astype({"age_years": "int32"}),
        "dim_stratum_types": _ranked(definition.stratum_types, "stratum_type", "type_rank"),
        "dim_stratum_values": stratum_values,
        "dim_care_gaps": pd.DataFrame(
            {
                "care_gap": [g["name"] for g in gaps],
                "index_tier": [g["index_tier"] for g in gaps],
                "outcome": [g["outcome"] for g in gaps],
                "window_days": pd.Series([int(g["window_days"]) for g in gaps], dtype="int32"),
                "gap_rank": range(1, len(gaps) + 1),
            }
        ),
        "dim_rule_targets": pd.DataFrame(
            [(t["name"], vs) for t in targets for vs in t["value_sets"]],
            columns=["target", "value_set"],
        ),
        "dim_tier_thresholds": pd.DataFrame({"tier": list(thresholds)})
        .merge(tiers, on="tier")
        .rename(columns={"tier_rank": "threshold_rank"}),
        "dim_documentation_fields": _ranked(
            definition.section("documentation_quality")["fields"], "field", "field_rank"
        ),
    }


def create_dimensions(con: duckdb.DuckDBPyConnection, definition: CohortDefinition) -> None:
    for name, frame in dimension_tables(definition).items():
        con.register("_dimension", frame)
        try:
            con.execute(
                f"CREATE OR REPLACE TABLE {COHORT_SCHEMA}.{name} AS SELECT * FROM _dimension"
            )
        finally:
            con.unregister("_dimension")


def model_sql(layer: str, name: str, context: dict[str, str]) -> str:
    return render((SQL_DIR / layer / f"{name}.sql").read_text(encoding="utf-8"), context, name)


def _check_inputs(con: duckdb.DuckDBPyConnection) -> None:
    present = {
        (s, t)
        for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
    }
    if ("features", "presentation_flags") not in present:
        raise UserError(
            "features.presentation_flags is missing from the warehouse; "
            "run the scoring stage (`redflags score` or `redflags run`) first"
        )


_MODEL_READ = re.compile(rf"\b{COHORT_SCHEMA}\.([a-z_]+)\b")
_MODEL_CREATED = re.compile(rf"CREATE OR REPLACE (TABLE|VIEW) {COHORT_SCHEMA}\.([a-z_]+)\b")


def _models_done_with(steps: list[str]) -> list[list[str]]:
    """Per step, the cohort tables that no later step reads, directly or through a view.

    The cohort models are in memory, under the run's memory limit; dropping each table
    after its last reader keeps the build's peak to the few models alive at once (at
    10M presentations they are each hundreds of MB). A model kept as a view costs no
    memory, but the tables it reads must live as long as it is read.
    """
    tables: set[str] = set()
    view_reads: dict[str, set[str]] = {}
    last_read: dict[str, int] = {}
    for index, sql in enumerate(steps):
        created = _MODEL_CREATED.search(sql)
        kind, model = created.groups() if created else (None, None)
        reads = set(_MODEL_READ.findall(sql)) - {model}
        for read in list(reads):
            reads |= view_reads.get(read, set())
        if kind == "TABLE":
            tables.add(model)
            last_read.setdefault(model, index)
        elif kind == "VIEW":
            view_reads[model] = reads
        for table in reads & tables:
            last_read[table] = index
    done: list[list[str]] = [[] for _ in steps]
    for name, index in last_read.items():
        done[index].append(name)
    return done


def _scratch(mart: str) -> str:
    """The table a mart is built into before publishing renames it."""
    return f"{MARTS_SCHEMA}.{BUILD_PREFIX}{mart}"


def _scratch_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        t
        for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = ? AND starts_with(table_name, ?)",
            [MARTS_SCHEMA, BUILD_PREFIX],
        ).fetchall()
    }


def _drop_scratch_tables(con: duckdb.DuckDBPyConnection) -> None:
    """What an earlier build left unpublished (a build that failed, or was not published)."""
    for table in sorted(_scratch_tables(con)):
        con.execute(f'DROP TABLE {MARTS_SCHEMA}."{table}"')


def build_cohorts(
    con: duckdb.DuckDBPyConnection,
    *,
    data_end: date | None = None,
    definition: CohortDefinition | None = None,
) -> dict[str, object]:
    """Build every cohort model and every mart into the scratch schema (not yet published)."""
    definition = definition or load_definition()
    create_schemas(con)
    _check_inputs(con)
    attached = {
        d for (d,) in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    }
    if COHORT_SCHEMA in attached:
        con.execute(f"DETACH {COHORT_SCHEMA}")
    con.execute(f"ATTACH ':memory:' AS {COHORT_SCHEMA}")
    con.execute(f"DROP SCHEMA IF EXISTS {LEGACY_BUILD_SCHEMA} CASCADE")
    _drop_scratch_tables(con)
    load_value_sets_table(con)
    create_dimensions(con, definition)
    warehouse = con.execute("SELECT current_database()").fetchone()[0]
    context = render_context(definition, data_end, warehouse)
    # what publish_marts logs, kept beside the marts it describes
    build_info = f"""CREATE TABLE {BUILD_INFO} AS
        SELECT d.data_end_date,
               (SELECT string_agg(DISTINCT rules_version, ',' ORDER BY rules_version)
                FROM {COHORT_SCHEMA}.int_back_pain_presentations) AS rules_version
        FROM {COHORT_SCHEMA}.int_data_end AS d"""
    steps = [model_sql(layer, name, context) for layer, name in BUILD_STEPS]
    # as soon as it can be, so that the index event's table is freed early
    steps.insert(BUILD_STEPS.index(("cohorts", "int_back_pain_presentations")) + 1, build_info)
    for step, done_with in zip(steps, _models_done_with(steps), strict=True):
        con.execute(step)
        for model in done_with:
            con.execute(f"DROP TABLE {COHORT_SCHEMA}.{model}")
    end = con.execute(f"SELECT data_end_date FROM {BUILD_INFO}").fetchone()[0]
    counts = {
        name: con.execute(f"SELECT count(*) FROM {_scratch(name)}").fetchone()[0] for name in MARTS
    }
    # the cohort models live in memory; publishing needs only the scratch marts
    con.execute(f"DETACH {COHORT_SCHEMA}")
    for mart, columns in WORKING_COLUMNS.items():
        for column in columns:
            con.execute(f"ALTER TABLE {_scratch(mart)} DROP COLUMN {column}")
    return {"data_end": end, "marts": counts}


def publish_marts(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    definition: CohortDefinition | None = None,
) -> dict[str, int]:
    """Replace marts.* with the scratch build in one transaction and log the run.

    Readers of the warehouse see either the previous marts or all of this run's.
    """
    definition = definition or load_definition()
    built = _scratch_tables(con)
    missing = [m for m in MARTS if BUILD_PREFIX + m not in built]
    if missing:
        raise UserError(
            f"no built marts to publish ({', '.join(missing)}); run build_cohorts first"
        )
    docs = load_mart_docs()
    data_end, rules_version = con.execute(
        f"SELECT data_end_date, rules_version FROM {BUILD_INFO}"
    ).fetchone()
    now = datetime.now(UTC).replace(tzinfo=None)
    details = {
        "windows": list(definition.windows),
        "outcomes": list(definition.outcome_names),
        "washout_days": definition.washout_days,
        "cohorts_version": definition.version,
        "marts_published_at": now.isoformat(),
    }
    counts: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for name in MARTS:
            con.execute(f"DROP TABLE IF EXISTS {MARTS_SCHEMA}.{name}")
            con.execute(f"ALTER TABLE {_scratch(name)} RENAME TO {name}")
            doc = docs[name]
            con.execute(f"COMMENT ON TABLE {MARTS_SCHEMA}.{name} IS {_quote(doc.description)}")
            columns = con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                [MARTS_SCHEMA, name],
            ).fetchall()
            for (column,) in columns:
                comment = column_comment(doc, column, definition)
                con.execute(
                    f"COMMENT ON COLUMN {MARTS_SCHEMA}.{name}.{column} IS {_quote(comment)}"
                )
            counts[name] = con.execute(f"SELECT count(*) FROM {MARTS_SCHEMA}.{name}").fetchone()[0]
        con.execute(
            """INSERT INTO ops.run_log (run_id, started_at, finished_at, status, rules_version,
                                        data_end, details)
               VALUES (?, ?, ?, 'marts_published', ?, ?, ?)
               ON CONFLICT (run_id) DO UPDATE SET
                   rules_version = excluded.rules_version,
                   data_end = excluded.data_end,
                   finished_at = excluded.finished_at,
                   details = json_merge_patch(coalesce(ops.run_log.details, '{}'),
                                              excluded.details)""",
            [run_id, now, now, rules_version, data_end, json.dumps(details | {"marts": counts})],
        )
        con.execute(f"DROP TABLE {BUILD_INFO}")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return counts


def build_and_publish(
    warehouse: str | Path, run_id: str, *, data_end: date | None = None
) -> dict[str, int]:
    """Both steps on one warehouse file: what `redflags run` does after scoring."""
    from pipelines.warehouse import connect

    con = connect(warehouse)
    try:
        build_cohorts(con, data_end=data_end)
        return publish_marts(con, run_id)
    finally:
        con.close()
