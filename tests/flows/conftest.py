"""Fixtures of the flow tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def run_flow() -> Callable[..., dict[str, Any]]:
    """Run the flow in this process: Prefect starts once per session, not once per run."""
    from pipelines.flows.prefect_env import configure_prefect

    configure_prefect()
    from pipelines.flows.run import redflags_run

    def run(input_dir: Path, warehouse: Path, **options: Any) -> dict[str, Any]:
        return redflags_run(input_dir=str(input_dir), warehouse=str(warehouse), **options)

    return run
