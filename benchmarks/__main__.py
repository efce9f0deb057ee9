"""`python -m benchmarks [--only NAME] [--rows N ...]`: run the bench_*.py cases, write results."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import benchmarks
from benchmarks.harness import measure, write_results


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
    options = parser.parse_args(argv)
    results = []
    notes: list[str] = []
    for name, module in modules.items():
        if options.only and name not in options.only:
            continue
        names = set()
        for case in module.cases(options):
            names.add(case.name)
            print(f"running {case.name} ...", flush=True)
            result = measure(case)
            print(
                f"  {result.wall_s} s wall, {result.peak_rss_mb} MB peak"
                + (f", MISSED {'; '.join(result.missed)}" if result.missed else ""),
                flush=True,
            )
            results.append(result)
        if hasattr(module, "derived"):
            notes += module.derived([r for r in results if r.name in names])
    if not results:
        print("no benchmark cases selected", file=sys.stderr)
        return 1
    path = write_results(results, notes)
    for line in notes:
        print(line)
    print(f"results: {path} and {path.with_suffix('.md')}")
    return 1 if any(r.returncode for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
