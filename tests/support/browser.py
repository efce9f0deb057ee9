"""Opening local pages in headless Chromium (Debian's package, `make test` installs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

# Every request a page might make fails at once: no proxy listens on port 9, and no
# name resolves. What opens with these flags opens offline.
OFFLINE = ("--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "chromium is not installed: run `bash scripts/ensure-chromium.sh` "
            "(Debian's chromium package) and rerun the tests"
        )
    return path


def browse(page: Path, work: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Open a local page in headless Chromium with a fresh profile, background traffic off."""
    work.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={work / 'profile'}",
            *extra,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def page_requests(net_log: Path) -> list[str]:
    """URLs the page itself asked for, from Chromium's NetLog.

    Requests on behalf of a page carry its site in the network isolation key
    (`file://` for a local file); the browser's own background traffic does not.
    """
    log = json.loads(net_log.read_text(encoding="utf-8"))
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start and "file://" in e.get("params", {}).get("network_isolation_key", "")
    ]
