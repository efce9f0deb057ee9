"""Prefect settings for a quiet, serverless run, applied before Prefect is imported."""

from __future__ import annotations

import os
import threading

QUIET_DEFAULTS: dict[str, str] = {
    # No usage analytics leave the machine.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    # Without PREFECT_API_URL, flows run against a temporary in-process server.
    "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
    # Our own console summary says what happened; Prefect's INFO lines would drown it.
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # The temporary server needs longer than Prefect's 20 s on a busy machine or on the
    # first run, when it creates its database; failing a nightly run for that helps nobody.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def configure_prefect() -> None:
    """Set the quiet defaults unless the user has set them already."""
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)


def drop_user_error_tracebacks() -> None:
    """Keep Prefect from logging a traceback for a UserError on the console.

    The CLI prints a UserError as one line; Prefect would log the same failure with its
    traceback first. Other exceptions keep their tracebacks. Call after importing Prefect.
    """
    import logging

    from pipelines.errors import UserError

    def not_a_user_error(record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, UserError)

    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(not_a_user_error)


def boot_temporary_server() -> threading.Thread | None:
    """Start Prefect's temporary server now, in a thread, so that it boots (a process of
    its own, seconds) while the run imports its stages; `run_pipeline` waits for it.

    Nothing to start when PREFECT_API_URL names a server. Call after configure_prefect.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None

    def boot() -> None:
        from prefect.server.api.server import SubprocessASGIServer

        try:
            SubprocessASGIServer().start()
        except Exception:  # noqa: BLE001 - started again, and reported, by run_pipeline
            return

    thread = threading.Thread(target=boot, name="prefect-temporary-server", daemon=True)
    thread.start()
    return thread
