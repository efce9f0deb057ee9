"""The wheel, installed into a fresh virtual environment, works from an empty directory.

What a new user does: `pip install` of the checkout (not editable), then a site, data,
a run, a query, an export and a report, each exiting 0, none of them reading a file of
the checkout.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.slow


def test_a_fresh_install_runs_everything_from_an_empty_directory(tmp_path: Path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "--verbose", "--wheel-dir", tmp_path / "dist", ROOT],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    assert "deprecat" not in (build.stdout + build.stderr).lower()  # no warning banner
    (wheel,) = (tmp_path / "dist").glob("redflags-*.whl")
    install = subprocess.run(
        [*pip, "install", "--quiet", wheel], capture_output=True, text=True, timeout=1200
    )
    assert install.returncode == 0, install.stderr[-3000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    # Nothing of the checkout on the path: the installed package alone, and no Prefect
    # server: the run starts its own, as a new user's does.
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "REDFLAGS_")) and k != "PREFECT_API_URL"
    }
    environ["PATH"] = f"{env_dir / 'bin'}:{environ.get('PATH', '/usr/bin:/bin')}"
    site = empty / "site"

    def redflags(*args: str, cwd: Path = site) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [env_dir / "bin" / "redflags", *args],
            capture_output=True, text=True, timeout=900, cwd=cwd, env=environ,
        )  # fmt: skip
        assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
        assert "Traceback" not in result.stderr
        return result

    redflags("init", "site", cwd=empty)
    redflags("generate", "--out", "data/in", "--patients", "2000")
    run = redflags("run", "--input", "data/in")
    assert "index presentations: " in run.stdout
    count = redflags("query", "select count(*) from marts.index_presentations", "--format", "csv")
    assert int(count.stdout.splitlines()[1]) > 0
    redflags("export", "--out", "ex")
    assert (site / "ex" / "manifest.json").is_file()
    redflags("report", "--out", "r.html")
    assert (site / "r.html").stat().st_size > 10_000
    # the package's files came from the environment, not from the checkout
    located = subprocess.run(
        [python, "-c", "from pipelines import resources; print(resources.packaged_root())"],
        capture_output=True, text=True, cwd=empty, env=environ,
    )  # fmt: skip
    assert Path(located.stdout.strip()).is_relative_to(env_dir)
