"""Bytes per kept sample: the RSS difference between two history sizes, per sample added.

Each size runs in a fresh process: a store of D devices × P points with ``history``
readings kept per point, filled by as many polls in which every value changes (so every
reading is kept), then its RSS. Integers as a Modbus register gives them, and floats as
a scaled point gives them (not exact in float32, so 8-byte columns).

    .venv/bin/python bench/memory.py [--small 100 --large 1100]
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
from pathlib import Path

from drivers.modbus.config import ModbusTcpDevice

DEVICES, POINTS = 10, 100


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def child(history: int, kind: str) -> None:
    from bridge.store import Store

    devices = [
        ModbusTcpDevice.model_validate(
            {
                "id": f"d{d}",
                "driver": "modbus-tcp",
                "connection": {"host": "h"},
                "points": [
                    {"id": f"p{i}", "table": "holding", "address": i} for i in range(POINTS)
                ],
            }
        )
        for d in range(DEVICES)
    ]
    store = Store(devices, history)
    names = [f"p{i}" for i in range(POINTS)]
    for poll in range(history):
        for d in range(DEVICES):
            results: dict[str, float | int]
            if kind == "int":
                results = {name: (poll + i) % 65536 for i, name in enumerate(names)}
            else:
                results = {name: (poll + i) / 10 for i, name in enumerate(names)}
            store.apply_poll(f"d{d}", results, 1_700_000_000.0 + poll / 20)
    gc.collect()
    assert all(len(store.history(f"d{d}", "p0")) == history for d in range(DEVICES))
    print(rss_bytes())


def measure(history: int, kind: str) -> int:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(history), "--kind", kind],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=1100)
    parser.add_argument("--child", type=int)
    parser.add_argument("--kind", default="int")
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.kind)
        return
    points = DEVICES * POINTS
    print(f"{points} points, history {args.small} and {args.large}, every value changed")
    print("| values | RSS small | RSS large | bytes per kept sample |")
    print("|---|---:|---:|---:|")
    for kind, label in (("int", "integers (uint16 registers)"), ("float", "floats (scaled)")):
        small, large = measure(args.small, kind), measure(args.large, kind)
        per_sample = (large - small) / (points * (args.large - args.small))
        print(f"| {label} | {small / 2**20:.1f} MB | {large / 2**20:.1f} MB | {per_sample:.1f} |")


if __name__ == "__main__":
    main()
