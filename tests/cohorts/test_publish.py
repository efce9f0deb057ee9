"""Publishing: every mart replaced in one transaction, documented, and logged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.cohorts import build as build_module
from pipelines.cohorts.build import build_cohorts, mart_names, publish_marts
from pipelines.cohorts.docs import load_mart_docs
from tests.support.cohorts import presentation, referral, warehouse

MARTS = {
    "index_presentations", "cohort_summary", "time_to_referral", "care_gaps",
    "imaging_overuse", "rule_performance", "documentation_quality",
}  # fmt: skip


def test_the_marts_are_the_published_models():
    assert set(mart_names()) == MARTS


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
    # sql/marts/<mart>.yml states each column's type; it must be the one the mart has
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
    assert details["windows"] == [1, 7, 14, 28, 90]
    assert details["marts"]["index_presentations"] == 1
    # no scratch table is left once published
    assert con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE starts_with(table_name, '_build_')"
    ).fetchone() == (0,)


def test_the_run_log_ends_in_published_after_the_ingest_logged_it(tmp_path: Path):
    con = warehouse(tmp_path, [presentation("E1", "A", 0)])
    # The ingest logs the run first (status 'ingested'); publishing must move it on.
    con.execute(
        "INSERT INTO ops.run_log (run_id, started_at, status) VALUES ('run-1', now(), 'ingested')"
    )
    build_cohorts(con)
    publish_marts(con, "run-1")
    assert con.execute("SELECT run_id, status FROM ops.run_log").fetchall() == [
        ("run-1", "published")
    ]


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


def test_a_build_replaces_what_an_unpublished_build_left(tmp_path: Path):
    con = warehouse(tmp_path, [presentation("E1", "A", 0)])
    # a scratch table of a build that was never published
    con.execute("CREATE TABLE marts._build_stale AS SELECT 1 AS x")
    build_cohorts(con)
    publish_marts(con, "run-1")
    tables = {
        (schema, table)
        for schema, table in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name = 'marts'"
        ).fetchall()
    }
    assert tables == {("marts", m) for m in MARTS}
    # nothing of the build is left attached once it is done
    databases = {
        d for (d,) in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()
    }
    assert "cohorts" not in databases


def test_the_marts_doc_is_written_from_the_mart_files():
    """docs/marts.md's mart sections are current (`python -m pipelines.cohorts.docs`)."""
    from pipelines.cohorts.docs import markdown, rewrite
    from tests.support import ROOT

    path = ROOT / "docs" / "marts.md"
    assert rewrite(path, markdown(load_mart_docs(), mart_names())) == path.read_text("utf-8")
    assert set(load_mart_docs()) == MARTS
