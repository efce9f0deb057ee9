"""Prefect settings for a quiet, serverless run, applied before Prefect is imported."""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipelines.errors import UserError

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


# The temporary server serves one run's flow and dies with it, so it does only what that
# needs: the API, the database and the services that record flow and task runs and their
# events. Left out: the UI; automations (the triggers and actions services, which also
# re-evaluate every few seconds through the run); the event stream to UI clients; and
# registering Prefect's block types, which nothing of the flow uses. About 0.5 CPU s of
# its start. With block registration off, its memo is off too: deciding whether to
# register imports every installed Prefect collection (prefect-dask, and with it Dask's
# distributed, 1.1 s) and hashes every block type, only to register nothing. The server
# is what a run waits for first, so that second comes off every run.
TEMPORARY_SERVER_ENV: dict[str, str] = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false",
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
    "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
}


class TemporaryServer:
    """Prefect's temporary API server, started as a bare process at the top of a run.

    Prefect starts the same server (uvicorn serving `prefect.server.api.server:create_app`,
    UI off) on first use, but only after the run has imported Prefect's server package
    (about 5 s) and then waits for it (about 7 s more) with nothing else to do. Started
    here, before the run imports Great Expectations, Prefect and the stages, the server
    boots on the other core meanwhile and the run imports nothing of it.

    The server dies with the run: it is stopped when the run ends, and on Linux the
    kernel stops it if the run's process is killed (even with SIGKILL).
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
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(_site_of("prefect")),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],  # fmt: skip
            env={**os.environ, **TEMPORARY_SERVER_ENV},
            preexec_fn=functools.partial(_die_with_parent, os.getpid())
            if sys.platform == "linux"
            else None,
        )

    def wait(self, timeout: float | None = None) -> str:
        """Block until the server answers its health check; its API address.

        A port taken in the meantime (uvicorn exits with code 3) is retried on another,
        a few times: uvicorn also exits with 3 when the application fails to start (say,
        Prefect's database is locked), which no other port mends.
        """
        limit = timeout or float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])
        deadline = time.monotonic() + limit
        retries = PORT_RETRIES
        while time.monotonic() < deadline:
            assert self.process is not None, "wait() after stop()"
            code = self.process.poll()
            if code == 3 and retries:
                retries -= 1
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
            f"Prefect's temporary server did not answer within {limit:g} s "
            "(setting PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS); a busy machine "
            "may need longer, or run against a Prefect server (`prefect server start`, "
            "then set PREFECT_API_URL)"
        )

    def stop(self) -> None:
        """Stop the server (politely, then not); safe to call twice."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Launches on a new port after uvicorn's exit code 3 (address in use, or a failed start).
PORT_RETRIES = 3


def start_temporary_server() -> TemporaryServer | None:
    """Start Prefect's temporary server now, unless PREFECT_API_URL names a server.

    Call after configure_prefect and before importing the stages; `run_pipeline` waits
    for it and points the flow at it.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None
    return TemporaryServer()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _site_of(package: str) -> Path:
    """The directory `package` is installed in, without importing it (Prefect: 2-3 s)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None, f"{package} is not installed"
    return Path(spec.origin).parent.parent


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
