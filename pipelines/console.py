"""Progress lines for long steps: on stderr, flushed at once, so stdout stays the result."""

from __future__ import annotations

import sys


def progress(message: str) -> None:
    """One line of progress; flushed so a waiting or killed run shows how far it got."""
    # Not print(): Prefect's log_prints would turn it into a log record, hidden at WARNING.
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
