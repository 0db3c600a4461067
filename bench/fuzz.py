"""The property tests of tests/test_fuzz.py, run for longer than the suite runs them.

    .venv/bin/python bench/fuzz.py [--examples N]

Runs every property with N examples (default 20,000; the suite runs 150) and prints, per
property, the examples run and the time taken, then the totals. Not part of CI: run it
on an otherwise idle machine. The figures go in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: hypothesis's statistics: "tests/test_fuzz.py::name:" then "- during generate phase
#: (12.34 seconds):" and "- 20000 passing, 0 failing, and 5 invalid test cases"
TEST = re.compile(r"^tests/test_fuzz\.py::(\w+):")
PHASE = re.compile(r"- during (\w+) phase \(([\d.]+) seconds\)")
PASSING = re.compile(r"- (\d+) passing, (\d+) failing")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000, help="examples per property")
    args = parser.parse_args()
    env = {**os.environ, "FUZZ_EXAMPLES": str(args.examples)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--hypothesis-show-statistics", "tests/test_fuzz.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    stats: dict[str, list[float]] = {}
    current = None
    for line in done.stdout.splitlines():
        line = line.strip()
        if found := TEST.match(line):
            current = found.group(1)
            stats[current] = [0, 0, 0.0]
        elif current and (found := PASSING.search(line)):
            stats[current][0] += int(found.group(1))
            stats[current][1] += int(found.group(2))
        elif current and (found := PHASE.search(line)):
            stats[current][2] += float(found.group(2))
    print(f"{'property':<72} {'examples':>9} {'failing':>7} {'seconds':>8}")
    for name, (passing, failing, seconds) in stats.items():
        print(f"{name:<72} {int(passing):>9} {int(failing):>7} {seconds:>8.1f}")
    total = sum(int(s[0]) for s in stats.values())
    print(f"{len(stats)} properties, {total} examples in {elapsed:.0f} s: "
          f"{'all held' if done.returncode == 0 else 'FAILED (pytest output below)'}")  # fmt: skip
    if done.returncode != 0:
        print(done.stdout[-5000:])
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
