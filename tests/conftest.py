"""Fixtures shared across test modules."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.paths import SAMPLE_DIR


@dataclass(frozen=True)
class SampleRun:
    warehouse: Path
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> SampleRun:
    """`redflags run` on data/sample/, as `make run` does, once per test session."""
    out = tmp_path_factory.mktemp("sample-run")
    warehouse = out / "warehouse.duckdb"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--input", str(SAMPLE_DIR),
         "--warehouse", str(warehouse)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return SampleRun(warehouse, result.stdout, result.stderr)
