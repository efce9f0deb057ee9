"""Measure commands in fresh subprocesses: wall time, CPU time, peak RSS.

Each `bench_*.py` module in this package defines `cases(options) -> list[Case]`.
A case is a command line; running it in its own process gives a clean peak RSS
(from wait4), so memory targets can be checked honestly.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"
CACHE_DIR = Path(__file__).parent / "cache"


@dataclass
class Case:
    name: str
    argv: list[str]
    rows: int = 0
    env: dict[str, str] = field(default_factory=dict)
    # Optional target: (field name, limit); a result above the limit is flagged.
    targets: dict[str, float] = field(default_factory=dict)


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


def measure(case: Case) -> Result:
    env = {**os.environ, **case.env}
    start = time.perf_counter()
    proc = subprocess.Popen(case.argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"  {case.name} failed ({code}):\n{stderr[-2000:]}", file=sys.stderr)
    result = Result(
        name=case.name,
        rows=case.rows,
        wall_s=round(wall, 3),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        rows_per_s=round(case.rows / wall) if case.rows and wall else 0,
        returncode=code,
        targets=case.targets,
        missed=[],
    )
    for key, limit in case.targets.items():
        if getattr(result, key) > limit:
            result.missed.append(f"{key} {getattr(result, key)} > {limit}")
    return result


def machine() -> dict[str, str | int]:
    return {
        "host": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count() or 0,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
    }


def write_results(results: list[Result], notes: list[str] | None = None) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d")
    path = RESULTS_DIR / f"{stamp}-{platform.node() or 'machine'}.json"
    payload = {
        "date": stamp,
        "machine": machine(),
        "results": [asdict(r) for r in results],
        "notes": notes or [],
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
