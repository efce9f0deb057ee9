"""Prefect settings for a quiet, serverless run, applied before Prefect is imported."""

from __future__ import annotations

import os

QUIET_DEFAULTS: dict[str, str] = {
    # No usage analytics leave the machine.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    # Without PREFECT_API_URL, flows run against a temporary in-process server.
    "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
    # Our own console summary says what happened; Prefect's INFO lines would drown it.
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}


def configure_prefect() -> None:
    """Set the quiet defaults unless the user has set them already."""
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
