"""Build the cohort models and marts of sql/ from cohorts.yml; publish the marts at once.

`build_cohorts` renders every model of sql/cohorts/ and sql/marts/ (`pipelines.models`:
each names what it reads, and the build order follows) and runs them: in-memory models
go into `cohorts`, a database attached for the build (nothing there needs to outlive
it, and not writing it to the warehouse file halves the build time), each table
dropped once no later model reads it; warehouse models are scratch tables
`marts._build_<mart>`. The dimension tables (`dim_*`) are made from cohorts.yml first,
as seeds the models ref. `publish_marts` drops each mart and renames its scratch
table in its place inside one transaction, with COMMENT ON from the marts' documentation
(sql/marts/*.yml), and records the run in ops.run_log, so a reader sees the old marts or
the new ones, never a mix. Renaming, not copying: DuckDB cannot move a table to
another schema, and copying the marts again cost as much as building them.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import duckdb
import pandas as pd

from pipelines import models as sql_models
from pipelines.cohorts.definition import CohortDefinition, Outcome, load_definition
from pipelines.cohorts.docs import column_comment, load_mart_docs
from pipelines.disclosure.release import build_release, store_release
from pipelines.errors import UserError
from pipelines.models import BUILD_PREFIX, COHORTS_DB, MARTS_SCHEMA, Model
from pipelines.resources import active
from pipelines.scoring.rules import load_rules
from pipelines.sqltext import identifier, literal
from pipelines.warehouse import create_schemas, load_value_sets_table

# The scratch table of the build's own record (sql/marts/run_info.sql).
RUN_INFO = "run_info"
# red_flag_mask and outcome_mask are BIGINTs with one bit per red flag, per outcome
MAX_MASK_BITS = 62


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
    tests = [f"{referral}.referral_type = {literal(outcome.referral_type)}"]
    for column in ("modality", "body_region"):
        value = getattr(outcome, column)
        if value is not None:  # a NULL criterion matches anything
            tests.append(f"{referral}.{column} = {literal(value)}")
    return " AND ".join(tests)


def render_context(definition: CohortDefinition, data_end: date | None) -> dict[str, object]:
    """The SQL fragments cohorts.yml decides: lists of flags, outcome columns, numbers."""
    flags = definition.red_flags
    outcomes = definition.outcome_names
    end = data_end or definition.data_end
    overuse = definition.section("overuse")
    hedis = overuse["hedis_lbp"]
    documented = definition.section("documentation_quality")["fields"]
    km = definition.section("time_to_referral")
    max_window = max(definition.windows)
    return {
        "data_end": f"DATE {literal(end.isoformat())}" if end else "NULL",
        "red_flags": list(flags),
        "imaging_excluded_regions": ", ".join(
            literal(r) for r in definition.section("outcomes")["imaging_excluded_regions"]
        )
        or "NULL",
        "washout_days": str(definition.washout_days),
        "max_tier_days": str(definition.max_tier_days),
        "washout_covers_max_tier_days": str(
            definition.washout_days >= definition.max_tier_days
        ).upper(),
        "age_band_other": literal(definition.age_band_other),
        "red_flag_names": ", ".join(flags),
        "red_flag_columns_f": ", ".join(f"f.{f}" for f in flags),
        "red_flag_definitions": ",\n    ".join(
            f"{f} BOOLEAN USING COMPRESSION roaring" for f in flags
        ),
        "red_flag_mask_f": "\n        + ".join(
            f"CASE WHEN f.{f} THEN {bit} ELSE 0 END" for f, bit in red_flag_bits(definition).items()
        ),
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
            f"SELECT * EXCLUDE ({', '.join(outcomes)}), {literal(o)} AS outcome,"
            f" {o} AS days_to_event FROM per_index WHERE {o} <= {max_window}"
            for o in outcomes
        ),
        # the days to the Kaplan-Meier outcome of i (load_definition checked the name)
        "days_to_km_outcome": f"i.days_to_{km['outcome']}",
        "max_window": str(max_window),
        "z": repr(definition.z),
        "km_outcome": km["outcome"],
        "max_day": str(int(km["max_day"])),
        "hedis_lbp_value_set": literal(hedis["low_back_pain_value_set"]),
        "hedis_pain_sites": ", ".join(literal(s) for s in hedis["pain_sites"]),
        "exclusion_flag_test": " OR ".join(
            f"coalesce(f.{identifier(flag)}, FALSE)" for flag in hedis["exclusion_flags"]
        )
        or "FALSE",
        "exclusion_flag_days": str(int(hedis["exclusion_flag_days"])),
        "low_value_tier": literal(overuse["low_value_imaging"]["tier"]),
        "overuse_min_age": str(int(overuse["min_age"])),
        "overuse_max_age": str(int(overuse["max_age"])),
        "overuse_window": str(int(overuse["window_days"])),
        "washout_covers_overuse_window": str(
            definition.washout_days >= int(overuse["window_days"])
        ).upper(),
        # the days to the first of the overuse outcomes of i (NULL when none of them)
        "days_to_overuse_outcome": "least("
        + ", ".join(f"i.days_to_{o}" for o in overuse["outcomes"])
        + ")",
        "rule_within_days": str(int(definition.section("rule_performance")["within_days"])),
        "rule_followup_days": str(int(definition.section("rule_performance")["followup_days"])),
        "crosswalk_prefix": literal(definition.section("rule_performance")["crosswalk_prefix"]),
        "crosswalk_code_start": str(
            len(definition.section("rule_performance")["crosswalk_prefix"]) + 1
        ),
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
    exclusions = definition.section("overuse")["hedis_lbp"]["exclusion_value_sets"]
    age_groups = definition.section("overuse")["age_groups"]
    thresholds = list(definition.tiers[:-1])
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
                "tier": [g["tier"] for g in gaps],
                "expected_outcomes": [" or ".join(g["outcomes"]) for g in gaps],
                # a referral qualifies when it is an event of any of the gap's outcomes
                "outcome_mask": pd.Series(
                    [sum(outcome_bits(definition)[o] for o in g["outcomes"]) for g in gaps],
                    dtype="int64",
                ),
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
        "dim_overuse_exclusions": pd.DataFrame(
            {
                "value_set": [x["value_set"] for x in exclusions],
                "lookback_days": pd.Series(
                    [int(x["lookback_days"]) for x in exclusions], dtype="int32"
                ),
            }
        ),
        "dim_overuse_age_groups": pd.DataFrame(
            {
                "age_group": [g["label"] for g in age_groups],
                "min_age": [int(g["min"]) for g in age_groups],
                "max_age": [int(g["max"]) for g in age_groups],
                "group_rank": range(1, len(age_groups) + 1),
            }
        ),
        "dim_documentation_fields": _ranked(
            definition.section("documentation_quality")["fields"], "field", "field_rank"
        ),
    }


def create_dimensions(con: duckdb.DuckDBPyConnection, definition: CohortDefinition) -> None:
    for name, frame in dimension_tables(definition).items():
        con.register("_dimension", frame)
        try:
            con.execute(f"CREATE OR REPLACE TABLE {COHORTS_DB}.{name} AS SELECT * FROM _dimension")
        finally:
            con.unregister("_dimension")


def create_macros(con: duckdb.DuckDBPyConnection, context: dict[str, object]) -> None:
    """The SQL macros of sql/macros/ (Wilson interval), which models call by name."""
    for path in active().paths(sql_models.MACROS, ".sql"):
        con.execute(sql_models.render_template(f"{sql_models.MACROS}/{path.name}", **context))


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


def model_statements(model: Model, warehouse: str, con: duckdb.DuckDBPyConnection) -> list[str]:
    """The SQL that builds `model`: a view or table of its SELECT; a table whose columns
    have a compression of their own is declared with its SELECT's column types first."""
    target = sql_models.relation(model, warehouse)
    if model.materialized == "view":
        return [f"CREATE OR REPLACE VIEW {target} AS\n{model.select}"]
    compression = {
        column: method
        for method, columns in model.config.get("compression", {}).items()
        for column in columns
    }
    if not compression:
        return [f"CREATE OR REPLACE TABLE {target} AS\n{model.select}"]
    described = con.execute(f"DESCRIBE SELECT * FROM (\n{model.select}\n)").fetchall()
    columns = ",\n    ".join(
        f"{identifier(name)} {type_}"
        + (f" USING COMPRESSION {compression[name]}" if name in compression else "")
        for name, type_, *_ in described
    )
    return [
        f"CREATE OR REPLACE TABLE {target} (\n    {columns}\n)",
        f"INSERT INTO {target}\n{model.select}",
    ]


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
        con.execute(f"DROP TABLE {MARTS_SCHEMA}.{identifier(table)}")


def published_marts(models: dict[str, Model], order: list[str]) -> list[tuple[str, Model]]:
    """(mart, model) of every mart, in build order."""
    return [(models[n].publish_as, models[n]) for n in order if models[n].publish_as]


def render_models(
    con: duckdb.DuckDBPyConnection, definition: CohortDefinition, data_end: date | None = None
) -> tuple[dict[str, Model], list[str]]:
    """Every model rendered for this warehouse, and the order to build them in."""
    warehouse = con.execute("SELECT current_database()").fetchone()[0]
    context = render_context(definition, data_end)
    models = sql_models.load_models(context, set(dimension_tables(definition)), warehouse)
    return models, sql_models.build_order(models)


def build_cohorts(
    con: duckdb.DuckDBPyConnection,
    *,
    data_end: date | None = None,
    definition: CohortDefinition | None = None,
) -> dict[str, object]:
    """Build every cohort model and every mart into scratch tables (not yet published)."""
    definition = definition or load_definition()
    create_schemas(con)
    _check_inputs(con)
    attached = {
        d for (d,) in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    }
    if COHORTS_DB in attached:
        con.execute(f"DETACH {COHORTS_DB}")
    con.execute(f"ATTACH ':memory:' AS {COHORTS_DB}")
    _drop_scratch_tables(con)
    load_value_sets_table(con)
    create_dimensions(con, definition)
    create_macros(con, render_context(definition, data_end))
    models, order = render_models(con, definition, data_end)
    warehouse = con.execute("SELECT current_database()").fetchone()[0]
    done_with = sql_models.last_readers(order, models)
    for name in order:
        for statement in model_statements(models[name], warehouse, con):
            con.execute(statement)
        for table in done_with[name]:
            con.execute(f"DROP TABLE {COHORTS_DB}.{table}")
    end = con.execute(
        f"SELECT data_end_date FROM {MARTS_SCHEMA}.{BUILD_PREFIX}{RUN_INFO}"
    ).fetchone()[0]
    counts = {
        mart: con.execute(f"SELECT count(*) FROM {MARTS_SCHEMA}.{BUILD_PREFIX}{mart}").fetchone()[0]
        for mart, _ in published_marts(models, order)
    }
    # the cohort models live in memory; publishing needs only the scratch marts
    con.execute(f"DETACH {COHORTS_DB}")
    for mart, model in published_marts(models, order):
        for column in model.working_columns:
            con.execute(f"ALTER TABLE {MARTS_SCHEMA}.{BUILD_PREFIX}{mart} DROP COLUMN {column}")
    return {"data_end": end, "marts": counts}


def mart_names(definition: CohortDefinition | None = None) -> list[str]:
    """The marts a build publishes, in build order (from the models of sql/)."""
    definition = definition or load_definition()
    con = duckdb.connect()
    try:
        models, order = render_models(con, definition)
    finally:
        con.close()
    return [mart for mart, _ in published_marts(models, order)]


def publish_marts(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    definition: CohortDefinition | None = None,
    min_cell: int | None = None,
) -> dict[str, int]:
    """Replace marts.* with the scratch build and make their release (minimum cell
    `min_cell`, the cohort definition's by default) in one transaction; log the run.

    Readers of the warehouse see either the previous marts and release or all of this
    run's.
    """
    definition = definition or load_definition()
    marts = mart_names(definition)
    built = _scratch_tables(con)
    missing = [m for m in [*marts, RUN_INFO] if BUILD_PREFIX + m not in built]
    if missing:
        raise UserError(
            f"no built marts to publish ({', '.join(missing)}); run build_cohorts first"
        )
    docs = load_mart_docs()
    data_end, rules_version = con.execute(
        f"SELECT data_end_date, rules_version FROM {MARTS_SCHEMA}.{BUILD_PREFIX}{RUN_INFO}"
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
        for name in marts:
            con.execute(f"DROP TABLE IF EXISTS {MARTS_SCHEMA}.{name}")
            con.execute(f"ALTER TABLE {MARTS_SCHEMA}.{BUILD_PREFIX}{name} RENAME TO {name}")
            doc = docs[name]
            con.execute(f"COMMENT ON TABLE {MARTS_SCHEMA}.{name} IS {literal(doc.description)}")
            columns = con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                [MARTS_SCHEMA, name],
            ).fetchall()
            for (column,) in columns:
                comment = column_comment(doc, column, definition)
                con.execute(
                    f"COMMENT ON COLUMN {MARTS_SCHEMA}.{name}.{column} IS {literal(comment)}"
                )
            counts[name] = con.execute(f"SELECT count(*) FROM {MARTS_SCHEMA}.{name}").fetchone()[0]
        # The release of these marts, in the same transaction: a reader never sees
        # marts with another run's release.
        release = build_release(con, definition, load_rules(), min_cell or definition.min_cell)
        store_release(con, run_id, release)
        details["release"] = release.audit
        con.execute(
            """INSERT INTO ops.run_log (run_id, started_at, finished_at, status, rules_version,
                                        data_end, details)
               VALUES (?, ?, ?, 'published', ?, ?, ?)
               ON CONFLICT (run_id) DO UPDATE SET
                   status = excluded.status,
                   rules_version = excluded.rules_version,
                   data_end = excluded.data_end,
                   finished_at = excluded.finished_at,
                   details = json_merge_patch(coalesce(ops.run_log.details, '{}'),
                                              excluded.details)""",
            [run_id, now, now, rules_version, data_end, json.dumps(details | {"marts": counts})],
        )
        con.execute(f"DROP TABLE {MARTS_SCHEMA}.{BUILD_PREFIX}{RUN_INFO}")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return counts
