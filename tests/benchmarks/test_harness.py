"""The benchmark harness: repeated runs reduce to the median one, cleaned state, results files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import harness
from benchmarks.harness import Case, Result, combine, measure, write_results


def result(wall: float, rss: float, returncode: int = 0, cpu: float = 1.0) -> Result:
    return Result(
        name="case",
        rows=1000,
        wall_s=wall,
        cpu_s=cpu,
        peak_rss_mb=rss,
        rows_per_s=round(1000 / wall),
        returncode=returncode,
        targets={"wall_s": 2.5, "peak_rss_mb": 500.0},
        missed=[],
        wall_runs=[wall],
    )


def test_repeated_runs_give_the_median_run_and_the_worst_memory():
    runs = [result(3.0, 100, cpu=3.1), result(2.0, 600, cpu=2.2), result(9.0, 200, cpu=9.9)]
    combined = combine(runs)
    # the median of 3.0, 2.0, 9.0 is the first run: its wall, CPU and rows/s
    assert (combined.wall_s, combined.cpu_s, combined.rows_per_s) == (3.0, 3.1, 333)
    assert combined.peak_rss_mb == 600
    assert combined.wall_runs == [3.0, 2.0, 9.0]
    # targets are checked on the combined result: wall 3.0 > 2.5, memory 600 > 500
    assert combined.missed == ["wall_s 3.0 > 2.5", "peak_rss_mb 600 > 500.0"]


def test_an_even_number_of_runs_takes_the_lower_median_and_keeps_a_failure():
    combined = combine([result(4.0, 10), result(1.0, 10, returncode=3)])
    assert combined.wall_s == 1.0
    assert combined.returncode == 3
    assert combined.missed == []


def test_each_measurement_starts_without_the_cleaned_paths(tmp_path: Path):
    state = tmp_path / "warehouse"
    # The command fails if the path exists, then creates it, as a run leaves its warehouse.
    script = (
        "import sys; from pathlib import Path; p = Path(sys.argv[1]); "
        "sys.exit(1) if p.exists() else p.mkdir()"
    )
    case = Case("clean", [sys.executable, "-c", script, str(state)], rows=10, clean=(state,))
    first, second = measure(case), measure(case)
    assert (first.returncode, second.returncode) == (0, 0)
    assert state.is_dir()
    unclean = Case("unclean", case.argv, rows=10)
    assert measure(unclean).returncode == 1


def test_results_files_carry_the_label_and_each_runs_wall_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(harness, "RESULTS_DIR", tmp_path)
    combined = combine([result(3.0, 100), result(2.0, 100), result(9.0, 100)])
    path = write_results([combined], ["- a derived line"], label="10m")
    assert path.name.endswith("-10m.json")
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert payload["results"][0]["wall_runs"] == [3.0, 2.0, 9.0]
    assert payload["notes"] == [
        "- a derived line",
        "- case: wall s of each run 3, 2, 9; the table gives the median run and the "
        "highest peak RSS",
    ]
    table = path.with_suffix(".md").read_text(encoding="utf-8")
    assert "| case | 1,000 | 3.0 | 1.0 | 100 | 333 | wall_s 3.0 > 2.5 |" in table


def allocate(mib: int) -> str:
    """Python source that holds `mib` MiB, every page touched, then exits."""
    return f"b = bytearray({mib} << 20)\nfor i in range(0, len(b), 4096): b[i] = 1"


def test_a_case_reports_its_own_peak_memory_not_the_harness_peak():
    # The harness holds 600 MiB while it measures; Linux would hand that peak to a
    # command it started itself. A bare interpreter uses about 10 MiB; one that holds
    # 300 MiB peaks a little above that.
    held = bytearray(600 << 20)
    for i in range(0, len(held), 4096):
        held[i] = 1
    bare = measure(Case("bare", [sys.executable, "-c", "pass"]))
    holding = measure(Case("holding", [sys.executable, "-c", allocate(300)]))
    del held
    assert (bare.returncode, holding.returncode) == (0, 0)
    assert bare.peak_rss_mb < 60
    assert 300 <= holding.peak_rss_mb < 360
    assert holding.cpu_s > 0


def test_a_case_that_writes_much_to_stderr_and_fails_is_reported(
    capsys: pytest.CaptureFixture[str],
):
    # 1 MiB of stderr, more than a pipe holds, then exit code 3.
    script = "import sys; sys.stderr.write('x' * (1 << 20) + 'the end'); sys.exit(3)"
    failed = measure(Case("noisy", [sys.executable, "-c", script], rows=10))
    assert failed.returncode == 3
    assert failed.wall_s > 0
    assert capsys.readouterr().err.rstrip().endswith("the end")


def test_a_command_that_cannot_start_is_a_failed_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    missing = Case("missing", [str(tmp_path / "no-such-program")], rows=10)
    failed = measure(missing)
    assert (failed.returncode, failed.wall_s, failed.rows_per_s) == (127, 0.0, 0)
    assert "cannot run" in capsys.readouterr().err
