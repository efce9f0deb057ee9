"""The flow under the conditions analysts meet: added files, busy warehouses, crashes.

Flows run in this process where they can (one ephemeral Prefect for the whole session);
subprocesses only where another process is the point: a second writer, a killed run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.support.orchestration import (
    INTAKE_A,
    INTAKE_B,
    REFERRALS_A,
    REFERRALS_B,
    copy_warehouse,
    differences,
    end_session,
    lock_held,
    redflags,
    release,
    subprocess_env,
    write_big_intake,
    write_inputs,
)

pytestmark = pytest.mark.slow

RunFlow = Callable[..., dict[str, Any]]


def wait_for_line(log: Path, prefix: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until the process has written a line starting with `prefix` to its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log.read_text(encoding="utf-8").splitlines()
        if any(line.startswith(prefix) for line in lines):
            return
        assert proc.poll() is None, f"run ended before {prefix!r}:\n" + "\n".join(lines)
        time.sleep(0.01)
    pytest.fail(f"no {prefix!r} line within {timeout:.0f}s")


def intake_ids(warehouse: Path) -> list[str]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute("SELECT encounter_id FROM raw.intake ORDER BY 1").fetchall()
        return [r[0] for r in rows]
    finally:
        con.close()


def manifest_rows(warehouse: Path) -> list[tuple[str, str, str]]:
    """(file name, status, run id) of every row of ops.ingest_manifest."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "SELECT file_path, status, run_id FROM ops.ingest_manifest ORDER BY 1, 3"
        ).fetchall()
        return [(Path(path).name, status, run_id) for path, status, run_id in rows]
    finally:
        con.close()


def file_statuses(result: dict[str, Any]) -> dict[str, str]:
    return {Path(f.path).name: f.status for f in result["ingest"].files}


def test_files_added_later_are_ingested_and_equal_a_fresh_run(tmp_path: Path, run_flow: RunFlow):
    inputs = write_inputs(
        tmp_path / "in", {"intake_2024a.csv": INTAKE_A, "referrals_a.csv": REFERRALS_A}
    )
    warehouse = tmp_path / "w.duckdb"
    first = run_flow(inputs, warehouse)
    assert first["raw"] == {"intake": 3, "referrals": 2, "diagnoses": 0, "patients": 0}
    assert file_statuses(first) == {"intake_2024a.csv": "loaded", "referrals_a.csv": "loaded"}

    # Patient P3 of the new referral is in the new intake file, which is ingested first.
    write_inputs(inputs, {"intake_2024b.csv": INTAKE_B, "referrals_b.csv": REFERRALS_B})
    second = run_flow(inputs, warehouse)
    # Intake changed, so the unchanged referrals file is checked again against the
    # patients now known (ingest.needs_recheck); the unchanged intake file is skipped.
    assert file_statuses(second) == {
        "intake_2024a.csv": "unchanged",
        "intake_2024b.csv": "loaded",
        "referrals_a.csv": "loaded",
        "referrals_b.csv": "loaded",
    }
    assert second["raw"] == {"intake": 5, "referrals": 3, "diagnoses": 0, "patients": 0}
    assert intake_ids(warehouse) == ["E1", "E2", "E3", "E4", "E5"]
    # The unchanged intake file was read once, by the first run; the rechecked
    # referrals file's first load is kept in the manifest as replaced.
    assert sorted(manifest_rows(warehouse)) == sorted(
        [
            ("intake_2024a.csv", "loaded", first["run_id"]),
            ("intake_2024b.csv", "loaded", second["run_id"]),
            ("referrals_a.csv", "replaced", first["run_id"]),
            ("referrals_a.csv", "loaded", second["run_id"]),
            ("referrals_b.csv", "loaded", second["run_id"]),
        ]
    )
    assert second["validation"]["quarantined"] == 0

    fresh = tmp_path / "fresh.duckdb"
    # With an export too: it reads the marts this very run published.
    extracts = tmp_path / "extracts"
    from_scratch = run_flow(inputs, fresh, export_dir=str(extracts))
    assert set(file_statuses(from_scratch).values()) == {"loaded"}
    manifest = json.loads((extracts / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["run_id"] == from_scratch["run_id"]
    assert differences(warehouse, fresh) == {}


def test_run_waits_for_a_connection_to_the_warehouse_itself(
    tmp_path: Path, run_flow: RunFlow, monkeypatch: pytest.MonkeyPatch
):
    """Readers open the published copy (tests/test_published.py); someone who opens the
    warehouse file itself, even read-only, still holds the run until they let go."""
    import pipelines.warehouse

    inputs = write_inputs(tmp_path / "in", {"intake.csv": INTAKE_A})
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    messages: list[str] = []
    with lock_held(warehouse, read_only=True) as analyst:

        def analyst_leaves_once_the_run_waits(message: str) -> None:
            messages.append(message)
            if message.startswith("warehouse busy"):
                release(analyst)

        monkeypatch.setattr(pipelines.warehouse, "progress", analyst_leaves_once_the_run_waits)
        result = run_flow(inputs, warehouse, lock_timeout=120)
    assert result["raw"]["intake"] == 3
    assert messages == [f"warehouse busy (held by pid {analyst.pid}), waiting\u2026 0s/120s"]
    assert intake_ids(warehouse) == ["E1", "E2", "E3"]


def test_second_writer_gives_up_with_a_clear_message(
    tmp_path: Path,
    run_flow: RunFlow,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
):
    """The CLI itself (in this process, whose Prefect is already up), against a held lock."""
    from pipelines.cli import main

    inputs = write_inputs(tmp_path / "in", {"intake.csv": INTAKE_A})
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    argv = ["redflags", "run", "-i", str(inputs), "-w", str(warehouse), "--lock-timeout", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    with lock_held(warehouse, read_only=False) as other_run, pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 75
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"redflags: error: {warehouse}: warehouse busy (held by pid {other_run.pid}); gave up "
        "after 1s. Close the other connection or wait for the other run, or raise lock_timeout."
    )


def test_two_runs_at_once_both_complete_like_a_clean_run(tmp_path: Path, run_flow: RunFlow):
    inputs = write_inputs(tmp_path / "in", {"intake_a.csv": INTAKE_A, "intake_b.csv": INTAKE_B})
    warehouse = tmp_path / "w.duckdb"
    args = ("run", "-i", str(inputs), "-w", str(warehouse), "--lock-timeout", "120")
    procs = [redflags(*args, env=subprocess_env()) for _ in range(2)]
    try:
        results = [proc.communicate(timeout=300) for proc in procs]
    finally:
        for proc in procs:
            end_session(proc)
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    clean = tmp_path / "clean.duckdb"
    run_flow(inputs, clean)
    assert differences(warehouse, clean) == {}


def published_runs(warehouse: Path) -> int:
    """Runs of ops.run_log that published marts (publish_marts records the time it did)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(
            "SELECT count(*) FROM ops.run_log WHERE details->>'marts_published_at' IS NOT NULL"
        ).fetchone()[0]
    finally:
        con.close()


def test_kill_while_building_cohorts_keeps_the_last_publication(tmp_path: Path, run_flow: RunFlow):
    inputs = write_inputs(tmp_path / "in", {"intake_a.csv": INTAKE_A, "referrals.csv": REFERRALS_A})
    warehouse = tmp_path / "w.duckdb"
    run_flow(inputs, warehouse)
    published = copy_warehouse(warehouse, tmp_path / "published.duckdb")
    assert published_runs(published) == 1

    # Enough rows that building the cohorts takes a while: the kill lands inside it.
    write_big_intake(inputs / "intake_big.csv", 20_000)
    log = tmp_path / "killed-run.log"
    with log.open("w") as err:
        proc = redflags(
            "run", "-i", str(inputs), "-w", str(warehouse), env=subprocess_env(), stderr=err
        )
        try:
            wait_for_line(log, "building cohorts and marts", proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            end_session(proc)  # the run's temporary Prefect server outlives it
    seen = log.read_text(encoding="utf-8")
    assert proc.returncode == -signal.SIGKILL, seen
    assert "writing the report" not in seen
    # The killed run never published: the marts are those of the last complete run.
    assert published_runs(warehouse) == 1
    assert differences(warehouse, published, schemas=("marts",)) == {}

    recovered = run_flow(inputs, warehouse)
    assert recovered["raw"]["intake"] == 20_003
    # The big file's ingest committed before the kill, so it is not read again.
    assert file_statuses(recovered)["intake_big.csv"] == "unchanged"
    clean = tmp_path / "clean.duckdb"
    run_flow(inputs, clean)
    assert differences(warehouse, clean) == {}
    # ... and the new marts differ from the old: the equality above was not for free.
    assert differences(warehouse, published, schemas=("marts",)) != {}
