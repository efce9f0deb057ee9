"""The min_cell in force: a site's `min_cell = 20` reaches the release, the export's
manifest and the report that `run` writes; export and report never remake the release."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.orchestration import subprocess_env


def redflags(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=subprocess_env(**env),
        timeout=600,
    )


@pytest.mark.slow
def test_a_sites_min_cell_is_the_releases_and_the_reports(tmp_path: Path):
    assert redflags("init", "site", cwd=tmp_path).returncode == 0
    site = tmp_path / "site"
    toml = site / "redflags.toml"
    text = toml.read_text()
    assert "# min_cell = 11\n" in text  # the commented default, in the top-level table
    toml.write_text(text.replace("# min_cell = 11\n", "min_cell = 20\n"))
    made = redflags("generate", "--out", "data/in", "--patients", "1500", cwd=site)
    assert made.returncode == 0, made.stderr
    run = redflags("run", "--input", "data/in", cwd=site)
    assert run.returncode == 0, run.stderr
    report = (site / "data" / "report.html").read_text(encoding="utf-8")
    assert "20 (counts 1–19 suppressed" in report
    exported = redflags("export", "--out", "ex", cwd=site)
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((site / "ex" / "manifest.json").read_text())
    assert manifest["suppression"]["min_cell"] == 20
    assert manifest["audit"]["min_cell"] == 20
    assert manifest["audit"]["narrowest_suppressed_range"] >= 20
    assert "note:" not in exported.stderr
    # a lower k asked of export alone is not given (it would sit beside the k = 20
    # release): the export says so and writes the release as it is
    lower = redflags("export", "--out", "ex2", cwd=site, REDFLAGS_MIN_CELL="15")
    assert lower.returncode == 0, lower.stderr
    assert json.loads((site / "ex2" / "manifest.json").read_text())["suppression"]["min_cell"] == 20
    assert "min_cell is 15 in your settings, but the release was made with 20" in lower.stderr
