"""Where the bridge's time goes at a load: py-spy on a running bridge, summarised.

Starts the farm and the bridge (``bench/peers.py``) with one subscriber, samples the
bridge with py-spy (``pip install py-spy`` into the venv: a developer tool, not a
dependency) and prints the share of samples by package and the functions with the most
own time.

    .venv/bin/python bench/profile_bridge.py --load 50x100@50
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import peers
from vs_nodered import Load

FARM_PORT, BRIDGE_PORT = 5900, 5996


PACKAGES = ("bridge/", "drivers/", "pymodbus/", "aiohttp/", "asyncio/", "json/", "gc")
#: leaves that are the loop waiting for I/O: asyncio's selector, or, on uvloop (whose loop is
#: C code py-spy does not see into), the Python frame that entered the loop
IDLE = ("EpollSelector.select", "Runner.run (asyncio/runners.py")


def area(frames: list[str]) -> str:
    """The package of the innermost frame that belongs to one: bridge, drivers, pymodbus,
    aiohttp, asyncio (the event loop itself), json; a sample in none is "other"."""
    for frame in reversed(frames):
        path = frame.partition("(")[2]
        for name in PACKAGES:
            if name in path:
                return name.rstrip("/")
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=Load.parse, default=Load(50, 100, 50))
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    load = args.load
    farm = peers.start_farm(load.devices, load.registers, FARM_PORT)
    with tempfile.TemporaryDirectory() as folder:
        config = peers.bridge_file(
            Path(folder), load.devices, load.registers, load.interval_ms / 1000, FARM_PORT
        )
        bridge = peers.start_bridge(Path(folder), config, BRIDGE_PORT, 1000)
        url = f"ws://127.0.0.1:{BRIDGE_PORT}/api/v1/stream"
        stop = time.time() + args.seconds + 8
        subscriber = subprocess.Popen(
            [sys.executable, str(peers.BENCH / "subscribers.py"), url,
             "--start", str(time.time()), "--stop", str(stop)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(3)
        raw = Path(folder) / "profile.txt"
        subprocess.run(
            [spy, "record", "--format", "raw", "-o", str(raw), "-d", str(args.seconds),
             "-r", "100", "--nonblocking", "-p", str(bridge.pid)],
            check=True, capture_output=True,
        )  # fmt: skip
        subscriber.wait()
        peers.stop(bridge)
        lines = raw.read_text().splitlines() if raw.exists() else []
    peers.stop(farm)
    by_area: collections.Counter[str] = collections.Counter()
    by_leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        samples = int(count)
        leaf = frames[-1]
        if leaf.startswith(IDLE):
            continue  # waiting for I/O (on uvloop, with the loop's own C work): not counted
        total += samples
        by_leaf[leaf] += samples
        by_area[area(frames)] += samples
    print(f"{load}: {total} busy samples over {args.seconds} s")
    print("| package (own time) | share |")
    print("|---|---:|")
    for name, samples in by_area.most_common():
        print(f"| {name} | {samples / total:.0%} |")
    print("\n| function (own time) | share |")
    print("|---|---:|")
    for name, samples in by_leaf.most_common(15):
        print(f"| `{name}` | {samples / total:.1%} |")


if __name__ == "__main__":
    main()
