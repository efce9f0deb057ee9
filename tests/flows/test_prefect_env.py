"""Prefect's temporary server as `redflags run` starts it: early, and never left behind.

Without PREFECT_API_URL a run starts `prefect server start` itself, before it imports
its stages (pipelines/flows/prefect_env.py). These tests run without the session's
shared server, so they are the ones that exercise that path.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from pipelines.errors import UserError
from pipelines.flows.prefect_env import PORT_RETRIES, TemporaryServer, configure_prefect
from tests.support import SAMPLE_DIR
from tests.support.orchestration import subprocess_env

pytestmark = pytest.mark.slow


def processes_marked(mark: str) -> list[int]:
    """Pids of live processes whose environment holds REDFLAGS_TEST_MARK=mark."""
    needle = f"REDFLAGS_TEST_MARK={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def no_shared_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    configure_prefect()


def test_run_starts_its_own_server_and_stops_it(sample_run):
    """The session's sample run (conftest.py) runs without PREFECT_API_URL."""
    with (SAMPLE_DIR / "intake.csv").open(newline="", encoding="utf-8") as f:
        n_intake = sum(1 for _ in csv.DictReader(f))
    assert f"scored {n_intake:,} presentations (duckdb)" in sample_run.stdout
    assert processes_marked(sample_run.mark) == []
    # The run's log lines reached the server before it stopped: Prefect did not complain
    # on the console that it could not send them. The console holds the progress only.
    assert [line for line in sample_run.stderr.splitlines() if not line.endswith("\u2026")] == []
    assert sample_run.stderr.splitlines()[-1] == "writing the report\u2026"


def test_server_dies_with_a_killed_run(tmp_path: Path):
    """kill -9 of the run leaves no server behind: Linux sends it SIGTERM (PDEATHSIG)."""
    mark = uuid.uuid4().hex
    script = textwrap.dedent(
        """
        import sys, time
        from pipelines.flows.prefect_env import PORT_RETRIES, TemporaryServer, configure_prefect
        configure_prefect()
        server = TemporaryServer()
        print(server.process.pid, flush=True)
        time.sleep(600)
        """
    )
    env = subprocess_env(REDFLAGS_TEST_MARK=mark)  # no PREFECT_* settings
    run = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        server_pid = int(run.stdout.readline())
        assert processes_marked(mark) == sorted([run.pid, server_pid])
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        assert gone_within(server_pid, 30), "the server outlived the killed run"
    finally:
        if run.poll() is None:
            run.kill()
        run.stdout.close()


def test_a_server_that_is_not_ready_in_time_is_stopped_with_a_clear_message(no_shared_server):
    server = TemporaryServer()
    process = server.process
    with pytest.raises(UserError) as error:
        server.wait(timeout=0.01)
    assert str(error.value) == (
        "Prefect's temporary server did not answer within 0.01 s; a busy machine may need "
        "longer, or run against a Prefect server (`prefect server start`, then set "
        "PREFECT_API_URL)"
    )
    assert process.poll() is not None
    assert server.process is None


def test_a_server_that_exits_early_is_reported(no_shared_server):
    server = TemporaryServer()
    server.stop()
    server.process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    server.process.wait(timeout=30)
    with pytest.raises(UserError, match="^Prefect's temporary server exited with code 1 before"):
        server.wait(timeout=30)


def test_a_server_whose_port_was_taken_is_relaunched_a_few_times(no_shared_server):
    """A server that exits while another process holds its port lost a race for the
    port: it is launched again, a few times, then the run stops with the exit code
    rather than spinning until the timeout. One that exits with its port free failed
    for another reason, which no new port mends: it is not launched again."""
    launched = []

    def fails_to_start() -> None:
        launched.append(1)
        server.process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
        server.process.wait(timeout=30)

    server = TemporaryServer()
    server.stop()
    server._launch = fails_to_start
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", server.port))
        holder.listen()
        fails_to_start()
        with pytest.raises(UserError, match="^Prefect's temporary server exited with code 1"):
            server.wait(timeout=60)
    assert len(launched) == 1 + PORT_RETRIES
    launched.clear()
    fails_to_start()
    with pytest.raises(UserError, match="^Prefect's temporary server exited with code 1"):
        server.wait(timeout=60)
    assert len(launched) == 1
