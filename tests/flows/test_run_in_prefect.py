"""What a run leaves in Prefect: its progress among its logs, links to what it wrote.

Progress lines go to the console always, and to the run's Prefect logs inside a run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pipelines.console import progress
from tests.support.orchestration import INTAKE_A, REFERRALS_A, write_inputs
from tests.support.prefect_api import run_artifacts


def test_progress_outside_a_run_is_a_console_line_only(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    progress("scoring 3 presentations\u2026")
    assert capsys.readouterr().err == "scoring 3 presentations\u2026\n"
    assert caplog.records == []


def test_progress_inside_a_flow_and_a_task_goes_to_their_run_loggers_at_info(
    run_flow, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    """`run_flow` configures Prefect for the session as a run does."""
    from prefect import flow, task

    @task
    def build() -> None:
        progress("building\u2026")

    @flow
    def stages() -> None:
        progress("reading\u2026")
        build()

    caplog.set_level(logging.INFO, logger="prefect")
    stages()
    ours = [
        (r.name, r.levelno, r.getMessage())
        for r in caplog.records
        if r.getMessage() in ("reading\u2026", "building\u2026")
    ]
    assert ours == [
        ("prefect.flow_runs", logging.INFO, "reading\u2026"),
        ("prefect.task_runs", logging.INFO, "building\u2026"),
    ]
    assert capsys.readouterr().err.splitlines() == ["reading\u2026", "building\u2026"]


@pytest.mark.slow
def test_a_run_links_its_report_and_data_docs_and_logs_its_stages(tmp_path: Path):
    """An in-process run on the session's server, read back through Prefect's client."""
    from pipelines.flows.prefect_env import configure_prefect

    configure_prefect()
    from pipelines.flows.run import redflags_run

    inputs = write_inputs(tmp_path / "in", {"intake.csv": INTAKE_A, "referrals.csv": REFERRALS_A})
    state = redflags_run(
        input_dir=str(inputs),
        warehouse=str(tmp_path / "w.duckdb"),
        docs_dir=str(tmp_path / "docs"),
        return_state=True,
    )
    assert state.is_completed()
    run_id = str(state.state_details.flow_run_id)
    api = os.environ["PREFECT_API_URL"]
    links = {a.key: a.data for a in run_artifacts(api, run_id) if a.key.startswith("redflags-")}
    assert links["redflags-report"] == f"[HTML report]({(tmp_path / 'report.html').as_uri()})"
    docs_index = (tmp_path / "docs" / "index.html").as_uri()
    assert links["redflags-data-docs"] == f"[Data Docs]({docs_index})"
    assert (tmp_path / "docs" / "index.html").is_file()
