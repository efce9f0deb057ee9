"""Fixtures shared across test modules, and the session's one Prefect API."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import SAMPLE_DIR

_SERVER = None


def pytest_configure(config: pytest.Config) -> None:
    """One Prefect API for every flow run of the session, started as a run starts its own.

    Without it, every `redflags run` started as a subprocess boots a temporary server of
    its own, seconds each. Started before the test modules import Prefect, so the
    in-process flows find it through PREFECT_API_URL as the subprocesses do, as users
    pointing runs at a Prefect server do. A test that needs no server (or another one)
    sets or removes the variable itself.
    """
    global _SERVER
    if os.environ.get("PREFECT_API_URL"):
        return
    from pipelines.flows.prefect_env import TemporaryServer, configure_prefect

    configure_prefect()
    _SERVER = TemporaryServer()
    os.environ["PREFECT_API_URL"] = _SERVER.wait()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SERVER is not None:
        _SERVER.stop()
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

    Like `make run`, without PREFECT_API_URL: the run starts and stops its temporary
    Prefect server itself (tests/flows/test_prefect_env.py checks it is gone).
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
