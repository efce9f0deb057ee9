"""Measure commands in fresh subprocesses: wall time, CPU time, peak RSS.

Each `bench_*.py` module in this package defines `cases(options) -> list[Case]`.
A case is a command line; running it in its own process, started by the small
launcher spawn.py (not by this process, whose peak it would inherit), gives a clean
peak RSS (from wait4), so memory targets can be checked honestly.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"
CACHE_DIR = Path(__file__).parent / "cache"
# Starts each case and reports its use (see spawn.py for why not this process).
SPAWN = Path(__file__).with_name("spawn.py")


@dataclass
class Case:
    name: str
    argv: list[str]
    rows: int = 0
    env: dict[str, str] = field(default_factory=dict)
    # Optional target: (field name, limit); a result above the limit is flagged.
    targets: dict[str, float] = field(default_factory=dict)
    # Removed before each measurement (not timed), so that a repeated case starts
    # from the same state as the first: e.g. a run's warehouse.
    clean: tuple[Path, ...] = ()


@dataclass
class Result:
    name: str
    rows: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    rows_per_s: float
    returncode: int
    targets: dict[str, float]
    missed: list[str]
    # Wall seconds of every run of the case, in order (one unless --repeat).
    wall_runs: list[float] = field(default_factory=list)


def measure(case: Case) -> Result:
    for path in case.clean:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    env = {**os.environ, **case.env}
    # stderr to a file, not a pipe: a case that writes more than a pipe holds would
    # block on it while nothing reads it until the case ends.
    with tempfile.TemporaryFile() as stderr_file:
        launched = subprocess.run(
            [sys.executable, str(SPAWN), *case.argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            check=False,
        )
        stderr_file.seek(0)
        stderr = stderr_file.read().decode(errors="replace")
    try:
        used = json.loads(launched.stdout.decode().splitlines()[-1])
    except (IndexError, ValueError) as error:
        raise RuntimeError(
            f"{case.name}: the launcher reported nothing ({error}):\n{stderr[-2000:]}"
        ) from error
    wall, code = used["wall_s"], used["returncode"]
    if code != 0:
        print(f"  {case.name} failed ({code}):\n{stderr[-2000:]}", file=sys.stderr)
    result = Result(
        name=case.name,
        rows=case.rows,
        wall_s=round(wall, 3),
        cpu_s=round(used["cpu_s"], 3),
        peak_rss_mb=round(used["peak_rss_kb"] / 1024, 1),
        rows_per_s=round(case.rows / wall) if case.rows and wall else 0,
        returncode=code,
        targets=case.targets,
        missed=[],
        wall_runs=[round(wall, 3)],
    )
    return _checked(result)


def _checked(result: Result) -> Result:
    """The result with the targets it misses listed."""
    missed = [
        f"{key} {getattr(result, key)} > {limit}"
        for key, limit in result.targets.items()
        if getattr(result, key) > limit
    ]
    return replace(result, missed=missed)


def combine(runs: list[Result]) -> Result:
    """Several runs of one case as one result: the run of median wall time, worst peak RSS.

    The median run (the lower one of an even count) gives the wall and CPU time and
    rows/s; the peak RSS is the highest of any run, since a memory limit must hold
    every time. Any failed run makes the result failed.
    """
    median = statistics.median_low(r.wall_s for r in runs)
    chosen = next(r for r in runs if r.wall_s == median)
    return _checked(
        replace(
            chosen,
            peak_rss_mb=max(r.peak_rss_mb for r in runs),
            returncode=next((r.returncode for r in runs if r.returncode), 0),
            wall_runs=[w for r in runs for w in r.wall_runs],
        )
    )


def machine() -> dict[str, str | int]:
    return {
        "host": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count() or 0,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
    }


def write_results(
    results: list[Result], notes: list[str] | None = None, label: str | None = None
) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d")
    name = f"{stamp}-{platform.node() or 'machine'}" + (f"-{label}" if label else "")
    path = RESULTS_DIR / f"{name}.json"
    repeated = [
        f"- {r.name}: wall s of each run {', '.join(f'{w:g}' for w in r.wall_runs)}; "
        "the table gives the median run and the highest peak RSS"
        for r in results
        if len(r.wall_runs) > 1
    ]
    notes = [*(notes or []), *repeated]
    payload = {
        "date": stamp,
        "machine": machine(),
        "results": [asdict(r) for r in results],
        "notes": notes,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    text = markdown_table(results) + ("\n" + "\n".join(notes) + "\n" if notes else "")
    path.with_suffix(".md").write_text(text, encoding="utf-8")
    return path


def markdown_table(results: list[Result]) -> str:
    lines = [
        "| case | rows | wall s | CPU s | peak RSS MB | rows/s | targets missed |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        missed = "; ".join(r.missed) or ("failed" if r.returncode else "-")
        lines.append(
            f"| {r.name} | {r.rows:,} | {r.wall_s} | {r.cpu_s} | {r.peak_rss_mb} "
            f"| {r.rows_per_s:,} | {missed} |"
        )
    return "\n".join(lines) + "\n"
