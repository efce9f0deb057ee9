"""Orchestration pieces that need no Prefect: run summary, writer lock."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.errors import UserError
from pipelines.flows.summary import MISSING, headline_rows, summary_markdown
from pipelines.warehouse import EXIT_BUSY, open_warehouse, wait_for_writer, writer
from tests.support.orchestration import lock_held, release

FULL_SUMMARY = {
    "run_id": "R1",
    "raw": {"intake": 1200, "referrals": 300, "diagnoses": 4},
    "validation": {
        "rows_in": 1504,
        "accepted": 1500,
        "quarantined": 4,
        "rejected_files": [{"file": "intake_bad.csv", "reason": "missing column sex"}],
    },
    # the operator's numbers from the marts: never in the artifacts
    "tiers": {"low": 601, "urgent": 3, "not_back_pain": 397, "high": 50, "moderate": 150},
    "index_presentations": 701,
    "care_gaps": 13,
    # the release's
    "released": {
        "min_cell": 11,
        "tiers": {
            "low": 300,
            "urgent": "suppressed",
            "high": 150,
            "moderate": 150,
            "low_poorly_documented": "suppressed",
        },  # fmt: skip
        "referral_rates": [
            {"stratum": "urgent", "window_days": 28, "outcome": "imaging", "rate": 0.5},
            {"stratum": "high", "window_days": 28, "outcome": "imaging", "rate": "suppressed"},
        ],
        "index_presentations": 600,
        "care_gaps": 12,
    },
}


def test_headline_table_of_a_complete_run():
    rows = {r["measure"]: r["value"] for r in headline_rows(FULL_SUMMARY)}
    assert rows["intake rows loaded"] == "1,200"
    assert rows["rows quarantined"] == "4"
    assert rows["files rejected"] == "1"
    assert rows["care gaps"] == "12"
    assert rows["index presentations"] == "600"
    assert rows["imaging within 28 days, urgent"] == "50.0%"
    assert rows["imaging within 28 days, high"] == "suppressed"
    # Index tiers in clinical order, highest first, whatever order the stage gave them.
    tiers = [
        r["measure"] for r in headline_rows(FULL_SUMMARY) if r["measure"].startswith("index tier")
    ]
    assert tiers == [
        "index tier urgent",
        "index tier high",
        "index tier moderate",
        "index tier low",
        "index tier low_poorly_documented",
    ]
    assert rows["index tier urgent"] == "suppressed"
    # nothing of the marts' own numbers reaches the artifact
    values = {r["value"] for r in headline_rows(FULL_SUMMARY)}
    assert not values & {"601", "701", "13", "397"}


def test_markdown_of_a_complete_run():
    text = summary_markdown(FULL_SUMMARY)
    assert "| intake | 1,200 |" in text
    assert "- quarantined: 4" in text
    assert "  - `intake_bad.csv`: missing column sex" in text
    # 300 of the release's 600 index presentations are low tier: 50.0%
    assert "| low | 300 | 50.0% |" in text
    assert "| urgent | suppressed | suppressed |" in text
    assert "| urgent | imaging | 28 | 50.0% |" in text
    assert "Care gaps (high-risk, not referred): 12" in text
    assert "minimum cell 11" in text


def test_summary_degrades_when_stages_are_missing():
    only_raw = {"run_id": "R2", "raw": {"intake": 3}}
    rows = {r["measure"]: r["value"] for r in headline_rows(only_raw)}
    assert rows["intake rows loaded"] == "3"
    assert rows["rows accepted"] == MISSING
    assert rows["care gaps"] == MISSING
    text = summary_markdown(only_raw)
    assert f"Validation numbers {MISSING}." in text
    assert f"Tier mix {MISSING}." in text
    assert f"Referral rates {MISSING}." in text
    assert summary_markdown({"run_id": "R3"}).count(MISSING) == 5


def test_writer_gives_up_after_the_timeout_naming_the_holder(tmp_path: Path):
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    messages: list[str] = []
    with lock_held(warehouse, read_only=False) as holder, pytest.raises(UserError) as err:
        wait_for_writer(warehouse, 0.5, report=messages.append)
    assert err.value.exit_code == EXIT_BUSY
    assert str(err.value) == (
        f"{warehouse}: warehouse busy (held by pid {holder.pid}); gave up after 0.5s. Close the "
        "other connection or wait for the other run, or raise lock_timeout."
    )
    assert messages[0] == f"warehouse busy (held by pid {holder.pid}), waiting\u2026 0s/0.5s"


def test_writer_waits_for_a_read_only_connection_to_the_warehouse_itself(tmp_path: Path):
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    messages: list[str] = []
    with lock_held(warehouse, read_only=True) as analyst:

        def analyst_leaves_once_told(message: str) -> None:
            messages.append(message)
            release(analyst)

        with writer(warehouse, 60, report=analyst_leaves_once_told) as con:
            assert analyst.poll() is not None  # the writer got in only after the analyst left
            con.execute("CREATE TABLE ops.proof AS SELECT 42 AS answer")
    assert messages == [f"warehouse busy (held by pid {analyst.pid}), waiting\u2026 0s/60s"]
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT answer FROM ops.proof").fetchall() == [(42,)]
    con.close()


def test_writer_sets_the_memory_limit_for_every_connection_of_the_run(tmp_path: Path):
    path = tmp_path / "w.duckdb"
    # A task's own connection to the same file shares the database and its limit.
    with writer(path, 1.0, memory_limit="512MB"), open_warehouse(path) as con:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit == "488.2 MiB"  # DuckDB shows 512 * 10^6 bytes in MiB


def test_a_file_that_is_not_a_warehouse_fails_at_once(tmp_path: Path):
    bad = tmp_path / "w.duckdb"
    bad.write_text("not a database", encoding="utf-8")
    with pytest.raises(UserError, match=r"w.duckdb: cannot open the warehouse"):
        wait_for_writer(bad, 30)


def test_warehouse_comparison_sees_one_changed_row_and_ignores_run_ids(tmp_path: Path):
    from pipelines.warehouse import open_warehouse
    from tests.support.orchestration import differences

    for name, run_id, age in (("a", "run-1", "55"), ("b", "run-2", "55"), ("c", "run-1", "56")):
        with open_warehouse(tmp_path / f"{name}.duckdb") as con:
            con.execute(
                "INSERT INTO raw.intake (encounter_id, age_years, source_row, run_id) "
                "VALUES ('E1', ?, 2, ?), ('E2', '33', 3, ?)",
                [age, run_id, run_id],
            )
    assert differences(tmp_path / "a.duckdb", tmp_path / "b.duckdb") == {}
    # E1 aged 55 is missing from c, E1 aged 56 from a: two rows differ.
    assert differences(tmp_path / "a.duckdb", tmp_path / "c.duckdb") == {
        "raw.intake": "2 rows differ"
    }
