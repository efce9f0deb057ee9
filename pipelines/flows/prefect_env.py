"""Prefect for a run: quiet defaults, and the one way a run gets a Prefect API.

A flow run needs a Prefect API. When PREFECT_API_URL names a server (`prefect server
start`, Prefect Cloud), runs report there. Otherwise a run starts a temporary server
of its own with Prefect's public command, `prefect server start`, as a child process
on a free port, and points the flow (and any Dask worker) at it through
PREFECT_API_URL; the server is stopped when the run ends. The test suite starts its
one server for the session the same way. Prefect's own ephemeral mode would start the
same server, but only after importing its server package into the run's process
(2.5 s) and then waiting for it with nothing else to do; started first, the server
boots on the other core while the run imports its stages.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.errors import UserError

QUIET_DEFAULTS: dict[str, str] = {
    # No usage analytics leave the machine.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}
# Prefect's run loggers keep its default level, INFO, so a flow run's stage progress
# (pipelines/console.py) and state changes reach the API and its UI; the console handler
# of Prefect's logging configuration shows only warnings, since our own progress lines
# and summary say what happened and Prefect's INFO lines would drown them. Set through
# Prefect's documented override of a logging.yml key, PREFECT_LOGGING_[PATH]_[TO]_[KEY].
QUIET_CONSOLE: dict[str, str] = {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}
# A user who sets any of these has chosen what Prefect logs where: the console is theirs.
USER_LOGGING = (
    "PREFECT_LOGGING_LEVEL",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL",
    "PREFECT_LOGGING_SETTINGS_PATH",
    "PREFECT_LOGGING_CONFIG_PATH",
)

# The temporary server serves one run and dies with it, so it runs only what recording
# that run needs: the API, the database, and the services that record task runs and
# events. Left out, all through Prefect's public settings: the UI; the services of a
# long-lived server (the scheduler and late runs: nothing is scheduled on it; the
# database vacuum, which would delete old events of PREFECT_HOME's database at every
# start; the foreman, cancellation clean-up, pause expirations, the repossessor, the
# clean-up reconciler); automations (the triggers service re-evaluates every few
# seconds); the event stream to UI clients; and registering Prefect's block types,
# which nothing of the flow uses.
TEMPORARY_SERVER_ENV: dict[str, str] = {
    "PREFECT_SERVER_UI_ENABLED": "false",
    **{
        f"PREFECT_SERVER_SERVICES_{service}_ENABLED": "false"
        for service in (
            "SCHEDULER",
            "LATE_RUNS",
            "DB_VACUUM",
            "FOREMAN",
            "CANCELLATION_CLEANUP",
            "PAUSE_EXPIRATIONS",
            "REPOSSESSOR",
            "CLEANUP_RECONCILER",
            "TRIGGERS",
        )
    },
    "PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false",
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
    "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
}
# How long a temporary server may take to answer (the first start creates its database).
STARTUP_TIMEOUT_S = 120.0
# Launches on a new port when the chosen one was taken in the meantime.
PORT_RETRIES = 3


def configure_prefect() -> None:
    """Set the quiet defaults unless the user has set them already.

    Call before importing Prefect, which configures its logging on import; the processes
    a run starts (Dask workers, the temporary server) inherit the settings.
    """
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if not any(os.environ.get(key) for key in USER_LOGGING):
        os.environ.update(QUIET_CONSOLE)


def send_run_logs() -> None:
    """Send the run log lines still queued for the Prefect API, and wait until they are.

    Prefect sends them in batches every few seconds; the temporary server must not stop
    before the last batch, or the run's last lines never reach it (and Prefect complains
    on the console that it could not send them).
    """
    import logging

    run_loggers = (logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs"))
    for handler in {handler for logger in run_loggers for handler in logger.handlers}:
        handler.flush()


def drop_user_error_tracebacks() -> None:
    """Keep Prefect from logging a UserError on the console, traceback or state line.

    The CLI prints a UserError as one line; Prefect would log the same failure with its
    traceback first. Other exceptions keep their tracebacks. Call after importing Prefect.
    """
    import logging

    # A task or flow run that ended in a UserError is logged once more as a state line,
    # 'Finished in state Failed(... UserError: <the message>)', with no exception attached.
    failed_by_user_error = f"exception {UserError.__name__}:"

    def not_a_user_error(record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, UserError):
            return False
        message = record.getMessage()
        return not (
            message.startswith("Finished in state Failed") and failed_by_user_error in message
        )

    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(not_a_user_error)


class TemporaryServer:
    """`prefect server start` as a child process on a free port, until `stop`.

    `start` returns at once; `wait` blocks until the server answers its health check.
    On Linux the child is also stopped by the kernel if the run's process dies.
    """

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._launch()
        atexit.register(self.stop)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _launch(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                prefect_command(),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "ERROR",
            ],
            env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
            | TEMPORARY_SERVER_ENV,
            stdout=subprocess.DEVNULL,
            preexec_fn=functools.partial(_die_with_parent, os.getpid())
            if sys.platform == "linux"
            else None,
        )

    def wait(self, timeout: float = STARTUP_TIMEOUT_S) -> str:
        """Block until the server answers; its API address."""
        deadline = time.monotonic() + timeout
        retries = PORT_RETRIES
        while time.monotonic() < deadline:
            assert self.process is not None, "wait() after stop()"
            code = self.process.poll()
            if code is not None and retries and not port_is_free(self.port):
                retries -= 1  # another process took the port before the server bound it
                self._launch()
            elif code is not None:
                raise UserError(
                    f"Prefect's temporary server exited with code {code} before it was "
                    "ready; see its messages above, or run against a Prefect server "
                    "(`prefect server start`, then set PREFECT_API_URL)"
                )
            elif _healthy(self.api_url):
                return self.api_url
            time.sleep(0.1)
        self.stop()
        raise UserError(
            f"Prefect's temporary server did not answer within {timeout:g} s; a busy machine "
            "may need longer, or run against a Prefect server (`prefect server start`, then "
            "set PREFECT_API_URL)"
        )

    def stop(self) -> None:
        """Stop the server (politely, then not); safe to call twice."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_prefect_api() -> TemporaryServer | None:
    """Start a temporary server now, unless PREFECT_API_URL names a server.

    Call before importing the stages, so the server boots meanwhile; `prefect_api`
    then waits for it.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None
    return TemporaryServer()


@contextmanager
def prefect_api(server: TemporaryServer | None = None) -> Iterator[str]:
    """The block runs against one Prefect API, which Dask workers reach too.

    PREFECT_API_URL when it is set; else `server` (or one started here), waited for,
    made the API of this process's Prefect settings for the block, named in
    PREFECT_API_URL for the processes it starts (a local Dask cluster's workers), and
    stopped after it.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    server = server or TemporaryServer()
    try:
        url = server.wait()
        from prefect.settings import PREFECT_API_URL, temporary_settings

        os.environ["PREFECT_API_URL"] = url
        try:
            with temporary_settings(updates={PREFECT_API_URL: url}):
                try:
                    yield url
                finally:
                    send_run_logs()
        finally:
            os.environ.pop("PREFECT_API_URL", None)
    finally:
        server.stop()


def prefect_command() -> str:
    """The `prefect` command of this environment (beside this interpreter)."""
    beside = Path(sys.executable).with_name("prefect")
    found = str(beside) if beside.exists() else shutil.which("prefect")
    if not found:
        raise UserError("the `prefect` command is not installed beside redflags; reinstall it")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
