"""Orchestration pieces that need no Prefect: run summary, writer lock."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from pipelines.errors import UserError
from pipelines.flows.prefect_env import QUIET_CONSOLE, USER_LOGGING, configure_prefect
from pipelines.flows.summary import MISSING, headline_rows, summary_markdown, tier_shares
from pipelines.warehouse import EXIT_BUSY, open_warehouse, wait_for_writer, writer
from tests.support.orchestration import lock_held, release

# The 95% normal quantile, as the cohort definition's confidence level 0.95 gives it.
Z95 = 1.959963984540054

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
        "confidence_level": 0.95,
        "z": Z95,
        "tiers": {
            "low": 300,
            "urgent": "suppressed",
            "high": 150,
            "moderate": 150,
            "low_poorly_documented": "suppressed",
        },  # fmt: skip
        # as the release orders them (by tier name); its intervals are shown as they are
        "referral_rates": [
            {
                "stratum": "high",
                "window_days": 28,
                "outcome": "imaging",
                "n_events": 12,
                "n_eligible": "suppressed",
                "rate": "suppressed",
                "ci_low": "suppressed",
                "ci_high": "suppressed",
            },
            {
                "stratum": "urgent",
                "window_days": 28,
                "outcome": "imaging",
                "n_events": 10,
                "n_eligible": 20,
                "rate": 0.5,
                "ci_low": 0.299,
                "ci_high": 0.701,
            },
            {
                "stratum": "low",
                "window_days": 14,
                "outcome": "imaging",
                "n_events": 0,
                "n_eligible": 0,
                "rate": None,
                "ci_low": None,
                "ci_high": None,
            },
        ],  # fmt: skip
        "index_presentations": 600,
        "care_gaps": 12,
    },
}


def test_headline_table_of_a_complete_run():
    table = headline_rows(FULL_SUMMARY)
    assert {tuple(r) for r in table} == {
        ("measure", "count", "denominator", "rate", "95% interval")
    }  # every row has the same columns (Prefect's table artifact needs it)
    # measure: (count, denominator, rate, interval)
    rows = {r["measure"]: tuple(r.values())[1:] for r in table}
    assert rows["intake rows loaded"] == ("1,200", "", "", "")
    assert rows["rows quarantined"] == ("4", "", "", "")
    assert rows["files rejected"] == ("1", "", "", "")
    assert rows["care gaps"] == ("12", "", "", "")
    assert rows["index presentations"] == ("600", "", "", "")
    # The release's rate and interval, with its numerator and denominator.
    assert rows["imaging within 28 days, urgent"] == ("10", "20", "50.0%", "29.9% to 70.1%")
    # The release published 12 events but hid the denominator: the rate stays hidden.
    assert rows["imaging within 28 days, high"] == ("12", *["suppressed"] * 3)
    # No one eligible: no rate, which is not a suppression.
    assert rows["imaging within 14 days, low"] == ("0", "0", MISSING, MISSING)
    # 300 of 600 index presentations are low tier: 50.0%; Wilson, z = 1.96:
    # centre (0.5 + z^2/1200) / (1 + z^2/600) = 0.5, half-width
    # z / (1 + z^2/600) * sqrt(0.25/600 + z^2/1,440,000) = 1.9475 * 0.020478 = 0.0399.
    assert rows["index tier low"] == ("300", "600", "50.0%", "46.0% to 54.0%")
    assert rows["index tier urgent"] == ("suppressed", "600", "suppressed", "suppressed")
    # Index tiers in clinical order, highest first, whatever order the stage gave them;
    # referral rates by window, then by tier in the same order.
    measures = [r["measure"] for r in table]
    assert [m for m in measures if m.startswith(("index tier", "imaging"))] == [
        "index tier urgent",
        "index tier high",
        "index tier moderate",
        "index tier low",
        "index tier low_poorly_documented",
        "imaging within 14 days, low",
        "imaging within 28 days, urgent",
        "imaging within 28 days, high",
    ]
    # nothing of the marts' own numbers reaches the artifact
    values = {v for r in table for v in r.values()}
    assert not values & {"601", "701", "13", "397"}


def test_markdown_of_a_complete_run():
    text = summary_markdown(FULL_SUMMARY)
    assert "| intake | 1,200 |" in text
    assert "- quarantined: 4" in text
    assert "  - `intake_bad.csv`: missing column sex" in text
    assert "| index tier | index presentations | of | share | 95% interval |" in text
    # 300 of the release's 600 index presentations are low tier (interval worked above)
    assert "| low | 300 | 600 | 50.0% | 46.0% to 54.0% |" in text
    assert "| urgent | suppressed | 600 | suppressed | suppressed |" in text
    assert "| stratum | outcome | window (days) | referred | of | rate | 95% interval |" in text
    assert "| urgent | imaging | 28 | 10 | 20 | 50.0% | 29.9% to 70.1% |" in text
    assert "| high | imaging | 28 | 12 | suppressed | suppressed | suppressed |" in text
    table = text.split("## Index presentations by tier")[1].split("## Referrals")[0]
    tiers = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")]
    assert tiers == [
        "| index tier", "| urgent", "| high", "| moderate", "| low", "| low_poorly_documented"
    ]  # fmt: skip
    assert "Care gaps (high-risk, not referred): 12" in text
    assert "minimum cell 11" in text


def test_a_tier_share_and_its_wilson_interval_worked_by_hand():
    """3 of 10 index presentations urgent, 7 high; z = 1.959964 (95%), z^2 = 3.841459.

    3/10: p = 0.3, centre (0.3 + 3.841459/20) / (1 + 0.3841459) = 0.492073 / 1.384146
    = 0.355507; half-width 1.959964 / 1.384146 * sqrt(0.3 * 0.7/10 + 3.841459/400)
    = 1.416009 * sqrt(0.030604) = 1.416009 * 0.174939 = 0.247715; so 0.107791 to
    0.603222, shown as 10.8% to 60.3%. 7/10 mirrors it: 1 - 0.603222 to 1 - 0.107791.
    """
    released = {
        "z": Z95,
        "confidence_level": 0.95,
        "tiers": {"high": 7, "urgent": 3},
        "index_presentations": 10,
    }
    urgent, high = tier_shares(released)
    assert (urgent["tier"], urgent["n"], urgent["of"], urgent["share"]) == ("urgent", 3, 10, 0.3)
    assert urgent["ci_low"] == pytest.approx(0.107791, abs=1e-6)
    assert urgent["ci_high"] == pytest.approx(0.603222, abs=1e-6)
    assert high["ci_low"] == pytest.approx(1 - 0.603222, abs=1e-6)
    assert high["ci_high"] == pytest.approx(1 - 0.107791, abs=1e-6)
    rows = {r["measure"]: r for r in headline_rows({"released": released})}
    assert rows["index tier urgent"]["95% interval"] == "10.8% to 60.3%"
    assert rows["index tier high"]["95% interval"] == "39.7% to 89.2%"


def test_a_suppressed_total_hides_every_share():
    released = {"z": Z95, "tiers": {"high": 40, "low": 60}, "index_presentations": "suppressed"}
    assert [(s["tier"], s["share"], s["ci_low"]) for s in tier_shares(released)] == [
        ("high", "suppressed", "suppressed"),
        ("low", "suppressed", "suppressed"),
    ]


def test_summary_degrades_when_stages_are_missing():
    only_raw = {"run_id": "R2", "raw": {"intake": 3}}
    rows = {r["measure"]: r["count"] for r in headline_rows(only_raw)}
    assert rows["intake rows loaded"] == "3"
    assert rows["rows accepted"] == MISSING
    assert rows["care gaps"] == MISSING
    text = summary_markdown(only_raw)
    assert f"Validation numbers {MISSING}." in text
    assert f"Tier mix {MISSING}." in text
    assert f"Referral rates {MISSING}." in text
    assert summary_markdown({"run_id": "R3"}).count(MISSING) == 5


@pytest.mark.parametrize(
    ("users", "console"),
    [
        ({}, "WARNING"),  # Prefect's run loggers at its default INFO, its console quiet
        ({"PREFECT_LOGGING_LEVEL": "DEBUG"}, None),
        ({"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO"}, "INFO"),
        ({"PREFECT_LOGGING_SETTINGS_PATH": "/etc/prefect/logging.yml"}, None),
    ],
)
def test_prefect_logs_to_its_api_and_keeps_the_console_quiet_unless_the_user_chose(
    monkeypatch: pytest.MonkeyPatch, users: dict[str, str], console: str | None
):
    for key in (*USER_LOGGING, *QUIET_CONSOLE):
        monkeypatch.delenv(key, raising=False)
    for key, value in users.items():
        monkeypatch.setenv(key, value)
    configure_prefect()
    assert os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL") == console
    assert os.environ.get("PREFECT_LOGGING_LEVEL") == users.get("PREFECT_LOGGING_LEVEL")


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
