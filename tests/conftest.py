"""Fixtures shared across test modules."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.paths import SAMPLE_DIR


@pytest.fixture(scope="session", autouse=True)
def one_prefect_server_for_the_session() -> Iterator[None]:
    """One Prefect API for every flow run of the session (issue 6: one test harness).

    Without it, every `redflags run` started as a subprocess boots Prefect's temporary
    server of its own, 10-20 s each. The server is the same temporary server the
    in-process runs of this session use (Prefect keeps one per process); subprocesses
    find it through PREFECT_API_URL, as users pointing runs at a Prefect server do.
    A test that needs no server (or another one) sets or removes the variable itself.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from pipelines.flows.prefect_env import configure_prefect

    configure_prefect()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)


@dataclass(frozen=True)
class SampleRun:
    warehouse: Path
    stdout: str
    stderr: str
    mark: str  # REDFLAGS_TEST_MARK in the run's environment, inherited by its children


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> SampleRun:
    """`redflags run` on data/sample/, as `make run` does, once per test session.

    Like `make run`, without PREFECT_API_URL: the run starts and stops Prefect's
    temporary server itself (tests/test_temporary_server.py checks it is gone).
    """
    out = tmp_path_factory.mktemp("sample-run")
    warehouse = out / "warehouse.duckdb"
    mark = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--input", str(SAMPLE_DIR),
         "--warehouse", str(warehouse)],
        env=env | {"REDFLAGS_TEST_MARK": mark}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return SampleRun(warehouse, result.stdout, result.stderr, mark)
