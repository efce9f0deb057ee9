"""The flow under the conditions analysts meet: added files, busy warehouses, crashes, Dask.

Flows run in this process where they can (one ephemeral Prefect for the whole session);
subprocesses only where another process is the point: a second writer, a killed run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from orchestration_harness import (
    INTAKE_A,
    INTAKE_B,
    REFERRALS_A,
    ROOT,
    lock_held,
    redflags,
    release,
    snapshot,
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
    assert snapshot(warehouse) == snapshot(fresh)


def test_run_waits_for_an_analysts_read_only_connection(
    tmp_path: Path, run_flow: RunFlow, capsys: pytest.CaptureFixture[str]
):
    inputs = write_inputs(tmp_path / "in", {"intake.csv": INTAKE_A})
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    with lock_held(warehouse, read_only=True) as analyst:
        # The analyst closes the connection 2 s into the run's wait.
        timer = threading.Timer(2.0, release, [analyst])
        timer.start()
        result = run_flow(inputs, warehouse, lock_timeout=120)
        timer.join()
    assert result["raw"]["intake"] == 3
    err = capsys.readouterr().err
    assert f"warehouse busy (held by pid {analyst.pid}), waiting\u2026 0s/120s" in err
    assert intake_ids(warehouse) == ["E1", "E2", "E3"]


def test_dask_run_equals_single_process_run(
    tmp_path: Path, run_flow: RunFlow, monkeypatch: pytest.MonkeyPatch
):
    from pipelines.config import Settings
    from pipelines.flows.deployments import configured_flow, task_runner

    inputs = write_inputs(
        tmp_path / "in",
        {
            "intake_1.csv": INTAKE_A,
            "intake_2.csv": INTAKE_B,
            "referrals.csv": REFERRALS_A,
        },
    )
    single = tmp_path / "single.duckdb"
    run_flow(inputs, single)

    # Dask's worker processes import this worktree's code, not an installed copy.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    settings = Settings(workers=2)
    assert type(task_runner(settings)).__name__ == "DaskTaskRunner"
    on_dask = tmp_path / "dask.duckdb"
    configured_flow(settings)(input_dir=str(inputs), warehouse=str(on_dask))
    assert snapshot(on_dask) == snapshot(single)
    assert intake_ids(on_dask) == ["E1", "E2", "E3", "E4", "E5"]


def test_second_writer_gives_up_with_a_clear_message(tmp_path: Path):
    inputs = write_inputs(tmp_path / "in", {"intake.csv": INTAKE_A})
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    with lock_held(warehouse, read_only=False) as other_run:
        proc = redflags(
            "run", "-i", str(inputs), "-w", str(warehouse), "--lock-timeout", "1",
            env=subprocess_env(),
        )  # fmt: skip
        _, err = proc.communicate(timeout=180)
    assert proc.returncode == 75
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
    results = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    clean = tmp_path / "clean.duckdb"
    run_flow(inputs, clean)
    assert snapshot(warehouse) == snapshot(clean)


def test_kill_mid_publish_keeps_the_last_publication(tmp_path: Path, run_flow: RunFlow):
    inputs = write_inputs(tmp_path / "in", {"intake_a.csv": INTAKE_A, "referrals.csv": REFERRALS_A})
    warehouse = tmp_path / "w.duckdb"
    run_flow(inputs, warehouse)
    published = snapshot(warehouse)

    write_big_intake(inputs / "intake_big.csv", 300_000)
    proc = redflags("run", "-i", str(inputs), "-w", str(warehouse), env=subprocess_env())
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("loading raw.intake"):
            # Inside the transaction that replaces raw.*: 300,000 rows are being written.
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    seen += proc.stderr.readlines()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    assert "raw tables loaded\n" not in seen

    assert snapshot(warehouse) == published  # the killed run left no trace in the data

    recovered = run_flow(inputs, warehouse)
    assert recovered["raw"]["intake"] == 300_003
    clean = tmp_path / "clean.duckdb"
    run_flow(inputs, clean)
    assert snapshot(warehouse) == snapshot(clean)
