"""`python -m benchmarks [--only NAME] [--rows N ...] [--repeat K]`: run the bench_*.py cases.

Writes benchmarks/results/<date>-<machine>[-<label>].json and .md.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import benchmarks
from benchmarks.harness import combine, measure, write_results


def bench_modules() -> dict[str, object]:
    return {
        info.name.removeprefix("bench_"): importlib.import_module(f"benchmarks.{info.name}")
        for info in pkgutil.iter_modules(benchmarks.__path__)
        if info.name.startswith("bench_")
    }


def main(argv: list[str] | None = None) -> int:
    modules = bench_modules()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(modules),
        help="run only these benchmark modules (repeatable)",
    )
    parser.add_argument(
        "--rows",
        type=int,
        action="append",
        help="input sizes in rows or patients, as each module reads it",
    )
    parser.add_argument(
        "--engine",
        action="append",
        choices=["pandas", "duckdb"],
        help="scoring engines to measure (default both)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="run every case K times, round by round (all cases of a module, then again), "
        "and report the median run: this machine's speed drifts from minute to minute",
    )
    parser.add_argument(
        "--label",
        help="added to the results file's name, so that a run does not replace another",
    )
    options = parser.parse_args(argv)
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")
    results = []
    notes: list[str] = []
    for name, module in modules.items():
        if options.only and name not in options.only:
            continue
        cases = module.cases(options)
        runs: dict[str, list] = {case.name: [] for case in cases}
        for round_ in range(options.repeat):
            for case in cases:
                suffix = f" (run {round_ + 1} of {options.repeat})" if options.repeat > 1 else ""
                print(f"running {case.name}{suffix} ...", flush=True)
                result = measure(case)
                print(
                    f"  {result.wall_s} s wall, {result.cpu_s} s CPU, {result.peak_rss_mb} MB peak"
                    + (f", MISSED {'; '.join(result.missed)}" if result.missed else ""),
                    flush=True,
                )
                runs[case.name].append(result)
        module_results = [combine(each) for each in runs.values()]
        results += module_results
        if hasattr(module, "derived"):
            notes += module.derived(module_results)
    if not results:
        print("no benchmark cases selected", file=sys.stderr)
        return 1
    path = write_results(results, notes, options.label)
    for line in notes:
        print(line)
    print(f"results: {path} and {path.with_suffix('.md')}")
    return 1 if any(r.returncode for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
