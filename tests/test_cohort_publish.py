"""Publishing: every mart replaced in one transaction, documented, and logged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cohort_fixtures import presentation, referral, warehouse

from pipelines.cohorts import build as build_module
from pipelines.cohorts.build import MARTS, build_cohorts, publish_marts
from pipelines.cohorts.docs import load_mart_docs


def test_marts_are_commented_and_the_run_logged(tmp_path: Path):
    con = warehouse(tmp_path, [presentation("E1", "A", 0)], [referral("R1", "A", 2)])
    build_cohorts(con)
    publish_marts(con, "run-1")
    tables = dict(
        con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'marts'"
        ).fetchall()
    )
    assert set(tables) == set(MARTS)
    assert all(tables[m] for m in MARTS)
    undocumented = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE schema_name = 'marts' AND (comment IS NULL OR comment = '')"
    ).fetchall()
    assert undocumented == []
    comment = con.execute(
        "SELECT comment FROM duckdb_columns() WHERE schema_name = 'marts' "
        "AND table_name = 'index_presentations' AND column_name = 'days_to_imaging_ct'"
    ).fetchone()[0]
    assert "imaging_ct" in comment
    # docs/marts.md states each column's type; it must be the one the mart has
    docs = load_mart_docs()
    wrong = [
        (table, column, docs[table].types.get(column), type_)
        for table, column, type_ in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = 'marts'"
        ).fetchall()
        if column in docs[table].types and docs[table].types[column] != type_
    ]
    assert wrong == []
    assert (
        docs["index_presentations"].types["days_to_<outcome>"]
        == con.execute(
            "SELECT data_type FROM duckdb_columns() WHERE schema_name = 'marts' "
            "AND column_name = 'days_to_biopsy_any'"
        ).fetchone()[0]
    )
    rules_version, data_end, details = con.execute(
        "SELECT rules_version, CAST(data_end AS VARCHAR), details FROM ops.run_log "
        "WHERE run_id = 'run-1'"
    ).fetchone()
    details = json.loads(details)
    assert (rules_version, data_end) == ("test-rules", "2024-01-03")
    assert details["windows"] == [1, 14, 28, 90]
    assert details["marts"]["index_presentations"] == 1
    # the scratch schema is gone once published
    assert con.execute(
        "SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'marts_build'"
    ).fetchone() == (0,)


def test_a_failed_publish_leaves_the_previous_marts_whole(tmp_path: Path, monkeypatch):
    con = warehouse(tmp_path, [presentation("E1", "A", 0)])
    build_cohorts(con)
    publish_marts(con, "run-1")
    con.execute(
        "INSERT INTO features.presentation_flags SELECT * REPLACE ('E2' AS encounter_id, "
        "'B' AS patient_id) FROM features.presentation_flags"
    )
    con.execute(
        "INSERT INTO staging.intake SELECT * REPLACE ('E2' AS encounter_id, 'B' AS patient_id) "
        "FROM staging.intake"
    )
    build_cohorts(con)

    def broken_comment(doc, column, definition):
        if doc.name == "time_to_referral":  # after index_presentations was replaced
            raise KeyError(column)
        return "documented"

    monkeypatch.setattr(build_module, "column_comment", broken_comment)
    with pytest.raises(KeyError):
        publish_marts(con, "run-2")
    # run-1's marts, all of them, and no run-2 in the log
    assert con.execute("SELECT count(*) FROM marts.index_presentations").fetchone() == (1,)
    assert con.execute(
        "SELECT n_censored FROM marts.cohort_summary WHERE stratum_type = 'all' "
        "AND window_days = 1 AND outcome = 'imaging_any'"
    ).fetchone() == (1,)
    assert con.execute("SELECT run_id FROM ops.run_log").fetchall() == [("run-1",)]


def test_missing_scores_is_a_clear_error(tmp_path: Path):
    import duckdb

    from pipelines.errors import UserError
    from pipelines.warehouse import create_schemas

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    create_schemas(con)
    with pytest.raises(UserError, match="features.presentation_flags is missing"):
        build_cohorts(con)


def test_each_cohort_table_is_dropped_after_its_last_reader():
    # a is read by b only (step 1); b is read by the view v (step 2), which the mart
    # reads at step 3, so b must live until step 3; a view itself is never dropped.
    steps = [
        "CREATE OR REPLACE TABLE cohorts.a AS SELECT 1 AS x",
        "CREATE OR REPLACE TABLE cohorts.b AS SELECT x FROM cohorts.a",
        "CREATE OR REPLACE VIEW cohorts.v AS SELECT x FROM cohorts.b",
        "CREATE OR REPLACE TABLE marts._build_m AS SELECT x FROM cohorts.v",
        "CREATE OR REPLACE TABLE cohorts.c AS SELECT 2 AS y",
    ]
    assert build_module._models_done_with(steps) == [[], ["a"], [], ["b"], ["c"]]


def test_a_build_replaces_what_an_unpublished_build_left(tmp_path: Path):
    con = warehouse(tmp_path, [presentation("E1", "A", 0)])
    # scratch tables of a build that was never published, and an older build's schema
    con.execute("CREATE TABLE marts._build_stale AS SELECT 1 AS x")
    con.execute("CREATE SCHEMA marts_build")
    con.execute("CREATE TABLE marts_build.index_presentations AS SELECT 1 AS x")
    build_cohorts(con)
    publish_marts(con, "run-1")
    tables = {
        (schema, table)
        for schema, table in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE schema_name IN ('marts', 'marts_build')"
        ).fetchall()
    }
    assert tables == {("marts", m) for m in MARTS}
    # nothing of the build is left attached once it is done
    databases = {
        d for (d,) in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    }
    assert "cohorts" not in databases
