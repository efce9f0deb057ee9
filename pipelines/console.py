"""Progress lines for long steps: on stderr, flushed at once, so stdout stays the result.

Inside a Prefect flow or task run the same line also goes to the run's logger at INFO,
which sends it to the Prefect API (the run's logs in the UI); Prefect's console handler
shows only warnings (pipelines/flows/prefect_env.py), so the terminal shows the line once.
"""

from __future__ import annotations

import logging
import sys


def progress(message: str) -> None:
    """One line of progress; flushed so a waiting or killed run shows how far it got."""
    # Not print(): Prefect's log_prints would make it a log record only, not a console line.
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    logger = run_logger()
    if logger is not None:
        logger.info(message)


def run_logger() -> logging.Logger | logging.LoggerAdapter | None:
    """The logger of the Prefect flow or task run under way, or None outside one."""
    context = sys.modules.get("prefect.context")
    if context is None:  # Prefect is not even imported: no run is under way
        return None
    if context.TaskRunContext.get() is None and context.FlowRunContext.get() is None:
        return None
    from prefect.logging import get_run_logger

    return get_run_logger()
