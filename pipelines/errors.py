"""Errors a user can meet. The CLI prints them as one line, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a bad request: says what was wrong, where, and what to do.

    `exit_code` is what the CLI exits with: 1 for bad data or a failed run,
    2 for a usage error (bad option, missing path).
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
