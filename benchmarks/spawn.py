"""Run one command and report what it used: `python benchmarks/spawn.py CMD [ARG...]`.

The harness measures every case through this small process, not directly. Linux
starts a new program with the peak RSS of the memory it replaces at exec: a command
started straight from the harness (by vfork, as Python's subprocess does) reports at
least the harness's own peak. The harness grows to hundreds of MB as it generates
inputs, so small cases reported its size rather than theirs. Started from here (a
bare interpreter of about 10 MB), a case reports its own peak.

Prints one JSON line on stdout: wall_s, cpu_s (user + system), peak_rss_kb and
returncode of the command, which gets this process's stdin and stderr and no
stdout. Exits with the command's exit code. Imports only the standard library, and
is run as a file, so that the benchmarks package is not loaded here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: spawn.py CMD [ARG...]", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    except OSError as error:
        # reported like a shell's "command not found", so the harness goes on
        print(f"spawn.py: cannot run {argv[0]}: {error}", file=sys.stderr)
        print(json.dumps({"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_kb": 0, "returncode": 127}))
        return 127
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    report = {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_kb": usage.ru_maxrss,  # Linux reports KiB
        "returncode": code,
    }
    print(json.dumps(report), flush=True)
    return code if 0 <= code < 256 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
