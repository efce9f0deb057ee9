"""Progress lines: on the console always, and in the run's Prefect logs inside a run."""

from __future__ import annotations

import logging

import pytest

from pipelines.console import progress


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
