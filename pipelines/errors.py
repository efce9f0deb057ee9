"""Errors a user can meet. The CLI prints them as one line, never a traceback."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class UserError(Exception):
    """Bad input or a bad request: says what was wrong, where, and what to do.

    `exit_code` is what the CLI exits with: 1 for bad data or a failed run,
    2 for a usage error (bad option, missing path).
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# How the C library says ENOSPC; DuckDB and pyarrow pass it on in their messages.
NO_SPACE = "No space left on device"


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it came from, is a full disk (ENOSPC).

    Python's OSError carries the errno; DuckDB's IOException and some of pyarrow's
    errors carry only the C library's message.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        if NO_SPACE in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def disk_full_stops(writing: str | Path) -> Iterator[None]:
    """A full disk while writing `writing` becomes one line that says what to do.

    It is a UserError: trying again cannot help until someone frees space, so the
    flow's tasks do not retry it, and the console shows no traceback.
    """
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise UserError(f"disk full while writing {writing}: free space and rerun") from exc
        raise
