"""SQL models name what they read: the build order and table lifetimes follow from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import models, resources
from pipelines.models import Model, ModelError, build_order, last_readers


def model(name: str, refs: set[str], materialized: str = "table", **config) -> Model:
    m = Model(name, Path(f"sql/cohorts/{name}.sql"), "cohorts", refs=set(refs))
    m.config = {"materialized": materialized, **config}
    return m


def test_every_model_comes_after_what_it_reads():
    graph = {
        "d": model("d", {"b", "c"}),
        "b": model("b", {"a"}),
        "c": model("c", {"a", "dim_x"}),  # a seed: built before every model
        "a": model("a", set()),
    }
    order = build_order(graph)
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("a") < order.index("c") < order.index("d")


def test_a_line_of_models_is_finished_before_another_starts():
    # x1 -> x2 -> x3 and y1 -> y2 are two lines from the same root r: after x1, x2 reads
    # the most recently built model, so the x line is finished before y starts.
    graph = {
        "r": model("r", set()),
        "x1": model("x1", {"r"}),
        "x2": model("x2", {"x1"}),
        "x3": model("x3", {"x2"}),
        "y1": model("y1", {"r"}),
        "y2": model("y2", {"y1"}),
    }
    assert build_order(graph) == ["r", "x1", "x2", "x3", "y1", "y2"]


def test_each_table_is_dropped_after_its_last_reader_through_views():
    # a is read by b only; b is read by the view v, which m reads: b lives until m is
    # built; a view is never dropped; c, read by nobody, goes once it is built; the
    # warehouse table m is never dropped here (publishing renames it).
    graph = {
        "a": model("a", set()),
        "b": model("b", {"a"}),
        "v": model("v", {"b"}, materialized="view"),
        "m": model("m", {"v"}, location="warehouse"),
        "c": model("c", set()),
    }
    order = ["a", "b", "v", "m", "c"]
    assert last_readers(order, graph) == {"a": [], "b": ["a"], "v": [], "m": ["b"], "c": ["c"]}


def test_a_cycle_is_refused_naming_the_models():
    graph = {"p": model("p", {"q"}), "q": model("q", {"p"}), "r": model("r", set())}
    with pytest.raises(ModelError, match="the models p, q read each other in a cycle"):
        build_order(graph)


def test_the_packaged_models_render_with_refs_resolved():
    import duckdb

    from pipelines.cohorts.build import render_models
    from pipelines.cohorts.definition import load_definition

    con = duckdb.connect()
    found, order = render_models(con, load_definition())
    fact = found["fct_index_presentations"]
    assert fact.location == "warehouse" and fact.publish_as == "index_presentations"
    assert {"int_followup", "fct_index_outcomes"} <= fact.refs
    assert '"memory".marts._build_index_presentations' in found["care_gaps"].select
    assert "{{" not in "".join(m.select for m in found.values())
    # no cohort model reads a mart: the marts read the cohort fact, never the reverse
    marts = {m.name for m in found.values() if m.layer == "marts"}
    assert all(not (m.refs & marts) for m in found.values())
    assert order.index("fct_index_presentations") < order.index("cohort_summary")


def test_a_ref_to_nothing_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    bad = tmp_path / "bad.sql"
    bad.write_text("SELECT * FROM {{ ref('no_such_model') }}\n", encoding="utf-8")
    monkeypatch.setattr(models, "model_files", lambda: [("cohorts", bad)])
    with pytest.raises(ModelError, match=r"bad\.sql: ref\('no_such_model'\) names no model"):
        models.load_models({}, set(), "memory")


def test_a_template_error_names_the_file_and_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    bad = tmp_path / "broken.sql"
    bad.write_text("SELECT 1\nFROM {{ ref('x' }}\n", encoding="utf-8")
    monkeypatch.setattr(models, "model_files", lambda: [("cohorts", bad)])
    with pytest.raises(resources.ResourceError, match=r"broken\.sql, line 2: "):
        models.load_models({}, set(), "memory")
