"""The flow under the conditions analysts meet: added files, busy warehouses, crashes.

Flows run in this process where they can (one ephemeral Prefect for the whole session);
subprocesses only where another process is the point: a second writer, a killed run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from orchestration_harness import (
    INTAKE_A,
    INTAKE_B,
    REFERRALS_A,
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


@pytest.fixture(scope="session")
def run_flow() -> RunFlow:
    """Run the flow in this process: Prefect starts once per session, not once per run."""
    from pipelines.flows.prefect_env import configure_prefect

    configure_prefect()
    from pipelines.flows.run import redflags_run

    def run(input_dir: Path, warehouse: Path, **options: Any) -> dict[str, Any]:
        return redflags_run(input_dir=str(input_dir), warehouse=str(warehouse), **options)

    return run


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


def test_files_added_later_are_ingested_and_equal_a_fresh_run(tmp_path: Path, run_flow: RunFlow):
    inputs = write_inputs(
        tmp_path / "in", {"intake_2024a.csv": INTAKE_A, "referrals.csv": REFERRALS_A}
    )
    warehouse = tmp_path / "w.duckdb"
    first = run_flow(inputs, warehouse)
    assert first["raw"] == {"intake": 3, "referrals": 2, "diagnoses": 0}
    (part_a,) = (tmp_path / "w.parts" / "intake").glob("*.parquet")
    stat_a = part_a.stat()

    write_inputs(inputs, {"intake_2024b.csv": INTAKE_B})
    second = run_flow(inputs, warehouse)
    assert second["raw"] == {"intake": 5, "referrals": 2, "diagnoses": 0}
    assert intake_ids(warehouse) == ["E1", "E2", "E3", "E4", "E5"]
    # The unchanged file was not converted again: its partition is the very same file.
    again = part_a.stat()
    assert (again.st_ino, again.st_mtime_ns) == (stat_a.st_ino, stat_a.st_mtime_ns)

    fresh = tmp_path / "fresh.duckdb"
    run_flow(inputs, fresh)
    assert differences(warehouse, fresh) == {}


def test_run_waits_for_an_analysts_read_only_connection(
    tmp_path: Path, run_flow: RunFlow, monkeypatch: pytest.MonkeyPatch
):
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


def test_kill_mid_publish_keeps_the_last_publication(tmp_path: Path, run_flow: RunFlow):
    inputs = write_inputs(tmp_path / "in", {"intake_a.csv": INTAKE_A, "referrals.csv": REFERRALS_A})
    warehouse = tmp_path / "w.duckdb"
    run_flow(inputs, warehouse)
    published = copy_warehouse(warehouse, tmp_path / "published.duckdb")

    write_big_intake(inputs / "intake_big.csv", 200_000)
    log = tmp_path / "killed-run.log"
    with log.open("w") as err:
        proc = redflags(
            "run", "-i", str(inputs), "-w", str(warehouse), env=subprocess_env(), stderr=err
        )
        try:
            wait_for_line(log, "loading raw.intake", proc)
            # Now inside the transaction that replaces raw.*, writing 200,003 intake rows.
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            end_session(proc)  # the run's temporary Prefect server outlives it
    seen = log.read_text(encoding="utf-8")
    assert proc.returncode == -signal.SIGKILL, seen
    assert "raw tables loaded" not in seen

    assert differences(warehouse, published) == {}  # the killed run left no trace in the data

    recovered = run_flow(inputs, warehouse)
    assert recovered["raw"]["intake"] == 200_003
    clean = tmp_path / "clean.duckdb"
    run_flow(inputs, clean)
    assert differences(warehouse, clean) == {}
