"""device-bridge and Node-RED side by side on the same Modbus TCP device farm, in one run.

The job, for both: poll N devices × M holding registers every R ms (every value changes
on every poll), keep the latest for HTTP, push every poll to one WebSocket subscriber.
The farm (``bench/modbus_farm.py``) and the subscriber (``bench/subscribers.py``) run in
processes of their own; each peer is measured from outside (``/proc``): CPU seconds per
delivered point, points delivered per second against those expected, RSS at the end.
The peers take turns, phase after phase, so that both see the same machine. Node-RED
4.1.15 and node-red-contrib-modbus 5.23.3 are installed with npm on first use.

    flock /work/locks/suite .venv/bin/python bench/vs_nodered.py \
        --load 50x100@50 --phases 2 --seconds 20

``--peers bridge`` with several ``--load`` gives the bridge's CPU per point at each load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import peers

FARM_PORT, BRIDGE_PORT, NODE_RED_PORT = 5900, 5990, 5991


@dataclass
class Load:
    devices: int
    registers: int
    interval_ms: int

    @classmethod
    def parse(cls, text: str) -> Load:
        shape, _, interval = text.partition("@")
        devices, _, registers = shape.partition("x")
        return cls(int(devices), int(registers), int(interval))

    @property
    def points_per_second(self) -> float:
        return self.devices * self.registers * 1000 / self.interval_ms

    def __str__(self) -> str:
        return f"{self.devices} devices × {self.registers} registers / {self.interval_ms} ms"


@dataclass
class Phase:
    peer: str
    cpu_per_point_us: float
    points_per_second: float
    delivered: float
    rss_mb: float
    #: the share of the machine's time the hypervisor gave other guests meanwhile
    stolen: float


def measure(
    peer: str,
    start: Callable[[], subprocess.Popen[bytes]],
    url: str,
    load: Load,
    warmup: float,
    seconds: float,
) -> Phase:
    process = start()
    try:
        t0 = time.time() + warmup
        t1 = t0 + seconds
        subscriber = subprocess.Popen(
            [
                sys.executable,
                str(peers.BENCH / "subscribers.py"),
                url,
                "--start",
                str(t0),
                "--stop",
                str(t1),
            ],
            stdout=subprocess.PIPE,
        )
        time.sleep(max(0.0, t0 - time.time()))
        cpu0, stolen0 = peers.cpu_seconds(process.pid), peers.stolen_seconds()
        time.sleep(max(0.0, t1 - time.time()))
        cpu1, stolen1 = peers.cpu_seconds(process.pid), peers.stolen_seconds()
        rss = peers.rss_bytes(process.pid)
        out, _ = subscriber.communicate(timeout=30)
        counts = json.loads(out)
    finally:
        peers.stop(process)
    points = counts["readings"]
    expected = load.points_per_second * seconds
    stolen = (stolen1 - stolen0) / (seconds * len(os.sched_getaffinity(0)))
    return Phase(
        peer, (cpu1 - cpu0) / max(points, 1) * 1e6, points / seconds, points / expected,
        rss / 2**20, stolen,
    )  # fmt: skip


def run_load(load: Load, names: list[str], args: argparse.Namespace, folder: Path) -> list[Phase]:
    farm = peers.start_farm(load.devices, load.registers, FARM_PORT)
    config = peers.bridge_file(
        folder, load.devices, load.registers, load.interval_ms / 1000, FARM_PORT
    )
    flow = peers.node_red_flow(load.devices, load.registers, load.interval_ms, FARM_PORT)
    starters = {
        "device-bridge": (
            lambda: peers.start_bridge(folder, config, BRIDGE_PORT, args.history),
            f"ws://127.0.0.1:{BRIDGE_PORT}/api/v1/stream",
        ),
        "Node-RED": (
            lambda: peers.start_node_red(folder, flow, NODE_RED_PORT),
            f"ws://127.0.0.1:{NODE_RED_PORT}/ws/stream",
        ),
    }
    phases = []
    try:
        for n in range(args.phases):
            for name in names:
                start, url = starters[name]
                phase = measure(name, start, url, load, args.warmup, args.seconds)
                print(
                    f"  phase {n + 1} {name}: {phase.cpu_per_point_us:.2f} µs/point, "
                    f"{phase.points_per_second:,.0f} points/s ({phase.delivered:.1%}), "
                    f"{phase.rss_mb:.0f} MB; {phase.stolen:.0%} of the machine stolen",
                    flush=True,
                )
                phases.append(phase)
    finally:
        peers.stop(farm)
    return phases


def table(load: Load, phases: list[Phase], names: list[str]) -> None:
    print(f"\n{load} = {load.points_per_second:,.0f} points/s expected")
    print("| peer | CPU per point | points/s delivered | delivered | RSS | stolen (most) |")
    print("|---|---:|---:|---:|---:|---:|")
    medians = {}
    for name in names:
        mine = [p for p in phases if p.peer == name]
        cpu = statistics.median(p.cpu_per_point_us for p in mine)
        medians[name] = (cpu, max(p.rss_mb for p in mine))
        print(
            f"| {name} | {cpu:.2f} µs | {statistics.median(p.points_per_second for p in mine):,.0f}"
            f" | {min(p.delivered for p in mine):.1%} | {medians[name][1]:.0f} MB"
            f" | {max(p.stolen for p in mine):.0%} |"
        )
    if len(names) == 2:
        (a_cpu, a_rss), (b_cpu, b_rss) = medians[names[0]], medians[names[1]]
        ratio = f"| ratio {names[0]} / {names[1]} | {a_cpu / b_cpu:.2f} |"
        print(f"{ratio} | | {a_rss / b_rss:.2f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--load",
        action="append",
        type=Load.parse,
        help="DEVICESxREGISTERS@MS (repeatable; default 50x100@50)",
    )
    parser.add_argument("--peers", default="bridge,node-red")
    parser.add_argument("--phases", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--history", type=int, default=1000, help="BRIDGE_HISTORY")
    args = parser.parse_args()
    known = {"bridge": "device-bridge", "node-red": "Node-RED"}
    names = [known[n.strip()] for n in args.peers.split(",")]
    loads = args.load or [Load(50, 100, 50)]
    if "Node-RED" in names:
        peers.install_node_red()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for load in loads:
            print(f"{load}:", flush=True)
            results.append((load, run_load(load, names, args, Path(folder))))
    for load, phases in results:
        table(load, phases, names)


if __name__ == "__main__":
    main()
