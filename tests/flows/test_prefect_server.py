"""`redflags serve` against a real Prefect server on loopback, triggered through its API.

One server per session (its start costs seconds), with its own PREFECT_HOME in tmp, stopped
at the end. The test talks to the server's REST API with httpx, and reads what the run
left there (its logs, its artifacts) with Prefect's client pointed at the server for that
read only, so this pytest process keeps its own Prefect settings.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.support.orchestration import INTAKE_A, REFERRALS_A, subprocess_env, write_inputs
from tests.support.prefect_api import run_artifacts, run_logs

pytestmark = pytest.mark.slow

DEPLOYMENT = "redflags-run/nightly"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, *, timeout: float, what: str, proc: subprocess.Popen | None = None):
    """Poll `check` until it returns something truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: process exited with {proc.returncode}")
        result = check()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout:.0f}s")


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C first (Prefect shuts down cleanly on it), then kill."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def get(client: httpx.Client, path: str) -> httpx.Response | None:
    try:
        return client.get(path)
    except httpx.TransportError:
        return None


WRITING_REPORT = "writing the report\u2026"


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server on a free loopback port with its own PREFECT_HOME; yields its API URL."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    env = subprocess_env(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
    )
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port), "--no-ui"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    try:
        with httpx.Client(base_url=url, timeout=5) as client:

            def healthy() -> bool:
                response = get(client, "/health")
                return response is not None and response.status_code == 200

            wait_until(healthy, timeout=180, what="prefect server start", proc=server)
        yield url
    finally:
        stop(server)
        log.close()


def test_serve_registers_the_schedule_and_runs_when_triggered(tmp_path: Path, prefect_server: str):
    inputs = write_inputs(tmp_path / "in", {"intake.csv": INTAKE_A, "referrals.csv": REFERRALS_A})
    (tmp_path / "redflags.toml").write_text(
        'input_dir = "in"\nwarehouse = "w.duckdb"\n'
        '[schedule]\ncron = "15 3 * * *"\ntimezone = "Europe/Paris"\n',
        encoding="utf-8",
    )
    env = subprocess_env(
        PREFECT_API_URL=prefect_server,
        PREFECT_HOME=str(tmp_path / "serve-home"),
        # Look for triggered runs every second rather than every ten.
        PREFECT_RUNNER_POLL_FREQUENCY="1",
    )
    serve = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "serve"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        stdout=(tmp_path / "serve.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=prefect_server, timeout=10) as client:

            def deployment() -> dict | None:
                response = get(client, f"/deployments/name/{DEPLOYMENT}")
                return response.json() if response and response.status_code == 200 else None

            found = wait_until(deployment, timeout=180, what="deployment served", proc=serve)
            (schedule,) = found["schedules"]
            assert schedule["schedule"]["cron"] == "15 3 * * *"
            assert schedule["schedule"]["timezone"] == "Europe/Paris"
            assert schedule["active"] is True
            assert found["parameters"]["warehouse"] == str(tmp_path / "w.duckdb")
            assert found["parameters"]["input_dir"] == str(inputs)

            def create_run() -> httpx.Response | None:
                # 503: the server's SQLite database is busy (it says so under load); retry.
                response = client.post(f"/deployments/{found['id']}/create_flow_run", json={})
                return None if response.status_code == 503 else response

            created = wait_until(create_run, timeout=120, what="flow run created", proc=serve)
            assert created.status_code == 201, created.text
            run_id = created.json()["id"]

            def finished() -> dict | None:
                state = client.get(f"/flow_runs/{run_id}").json()["state"]
                done = state["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
                return state if done else None

            state = wait_until(finished, timeout=300, what="triggered run", proc=serve)
            assert state["type"] == "COMPLETED", (tmp_path / "serve.log").read_text()

            # The run's stage progress, as the Prefect UI shows it under the run's logs
            # (sent in batches: wait for the last stage's line).
            def progress_logged() -> list | None:
                logs = run_logs(prefect_server, run_id)
                return logs if any(log.message == WRITING_REPORT for log in logs) else None

            logs = wait_until(progress_logged, timeout=60, what="run logs sent", proc=serve)
            info = [log.message for log in logs if log.level == logging.INFO]
            export_dir = found["parameters"]["export_dir"]
            assert [m for m in info if m.endswith("\u2026")] == [
                "reading and validating intake.csv (intake)\u2026",
                "loading 3 rows of intake.csv\u2026",
                "reading and validating referrals.csv (referrals)\u2026",
                "loading 2 rows of referrals.csv\u2026",
                "writing the validation pages\u2026",
                "scoring presentations (duckdb)\u2026",
                "building cohorts and marts\u2026",
                "publishing the marts and auditing their release (k = 11)\u2026",
                "writing the published copy for readers\u2026",
                f"exporting extracts to {export_dir}\u2026",
                WRITING_REPORT,
            ]

            by_key = {a.key: a for a in run_artifacts(prefect_server, run_id)}
            assert set(by_key) == {
                "redflags-run-summary",
                "redflags-headline-numbers",
                "redflags-report",
                "redflags-data-docs",
            }
            assert "| intake | 3 |" in by_key["redflags-run-summary"].data
            # Prefect stores a link artifact as the markdown of its link.
            report = f"[HTML report]({(tmp_path / 'report.html').as_uri()})"
            assert by_key["redflags-report"].data == report
            # Served runs write their validation pages beside the warehouse, and link them.
            docs = tmp_path / "docs" / "index.html"
            assert by_key["redflags-data-docs"].data == f"[Data Docs]({docs.as_uri()})"
            assert "intake.csv" in docs.read_text(encoding="utf-8")
    finally:
        stop(serve)
    # The run's INFO lines went to the server; the console of `serve` shows none of them.
    assert "| INFO" not in (tmp_path / "serve.log").read_text()

    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM raw.intake").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM raw.referrals").fetchone() == (2,)
    finally:
        con.close()


def test_serve_without_a_server_says_how_to_start_one(tmp_path: Path):
    env = subprocess_env(PREFECT_HOME=str(tmp_path / "home"))
    env.pop("PREFECT_API_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "serve"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "redflags: error: redflags serve needs a Prefect server: start one with "
        "`prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api"
    )
    assert "Traceback" not in result.stderr
