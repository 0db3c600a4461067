"""Change → subscriber latency of the bridge, p50/p99, with 1 and with 1000 subscribers.

The farm's device ``d0`` holds in registers 0-2 the time (ms) at which its values last
changed, every ``--change-ms``; the bridge polls it every ``--interval-ms``; subscribers
in several processes of their own (so that the clients are not what is measured) note
when each frame reached their socket (``bench/subscribers.py --clock``). Latency includes
the wait for the next poll, so it spreads over the interval. 137 ms and 100 ms have no
common factor, so a run's changes fall at every millisecond of the poll interval in turn,
as changes at random times would; a period such as 130 ms would only ever fall at ten
points 10 ms apart, and a tenth of the frames would wait the longest. Also printed: the
p99 by the time the clients read the frames; the p99 from the end of the poll (the
readings' ``ts``) to the socket, which leaves out the wait for the poll; the share of
frames whose arrivals paused for over 2 ms in the middle of their fan-out; whether the
poll rate held, the CPU of the stream measured (the bridge's or the bare stream's, below),
in user and system time (on loopback the kernel delivers each frame in the sender's system
time), and the time the hypervisor took from its core for other guests (``steal`` in
``/proc/stat``; 0 on a machine of its own).

Each run is made twice in turn, with the same farm and clients: once with the bridge, and
once with the bare stream (``bench/bare_stream.py``), which polls the same device and writes
each frame to its clients in one loop of ``send()`` calls and does nothing else: what the
kernel and the host leave of the target in that minute, beside what the bridge makes of
it. ``--streams bridge`` (or ``bare``) measures one only.

``--steer-loopback`` (root only) has the kernel do the receive half of each loopback
delivery on the other cores for the run (Receive Packet Steering on ``lo``), instead of in
the time of the bridge's ``send()``; the header says how ``lo`` was steered.

    .venv/bin/python bench/latency.py --subscribers 1 1000 [--streams bridge bare]
        [--steer-loopback]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import peers

FARM_PORT, BRIDGE_PORT, BARE_PORT = 5950, 5993, 5994
#: the streams a run can measure: the bridge, and the least a stream can do
STREAMS = ("bridge", "bare")


def polls(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/devices/d0") as answer:
        return int(json.load(answer)["stats"]["polls"])


def paused_share(arrivals: Iterable[list[tuple[float, float]]], pause: float = 0.002) -> float:
    """The share of frames whose arrivals at their subscribers stopped for over ``pause``.

    A frame is written to its subscribers in one pass, and on loopback each arrival is
    stamped within the bridge's own ``send()`` (just after it, with ``lo`` steered), so a
    pause between two successive arrivals is time in which the bridge's core did not run
    the pass.
    """
    frames: dict[float, list[float]] = {}
    for client_arrivals in arrivals:
        for changed_at, arrived in client_arrivals:
            frames.setdefault(changed_at, []).append(arrived)
    paused = 0
    for times in frames.values():
        times.sort()
        paused += any(b - a > pause for a, b in itertools.pairwise(times))
    return paused / max(1, len(frames))


def pin(process: subprocess.Popen[bytes], cores: set[int] | None) -> None:
    """Keep a process (its main thread: the bridge's event loop) on these cores."""
    if cores:
        os.sched_setaffinity(process.pid, cores)


def start_stream(
    name: str, folder: Path, args: argparse.Namespace
) -> tuple[subprocess.Popen[bytes], int]:
    """The bridge, or the bare stream (``bench/bare_stream.py``), polling the farm: the
    process and its port."""
    if name == "bridge":
        config = peers.bridge_file(folder, 1, args.registers, args.interval_ms / 1000, FARM_PORT)
        return peers.start_bridge(folder, config, BRIDGE_PORT, 1000), BRIDGE_PORT
    bare = subprocess.Popen(
        [
            sys.executable,
            str(peers.BENCH / "bare_stream.py"),
            "--farm-port",
            str(FARM_PORT),
            "--port",
            str(BARE_PORT),
            "--registers",
            str(args.registers),
            "--interval-ms",
            str(args.interval_ms),
        ]
    )
    peers.wait_http(f"http://127.0.0.1:{BARE_PORT}/api/v1/devices/d0", bare)
    return bare, BARE_PORT


def run(
    name: str,
    count: int,
    processes: int,
    args: argparse.Namespace,
    stream: subprocess.Popen[bytes],
    port: int,
    others: set[int] | None,
) -> None:
    url = f"ws://127.0.0.1:{port}/api/v1/stream"
    spread = min(processes, count)
    t0 = time.time() + args.warmup
    t1 = t0 + args.seconds
    clients = [
        subprocess.Popen(
            [
                sys.executable,
                str(peers.BENCH / "subscribers.py"),
                url,
                "--clock",
                "--clients",
                str(count // spread + (i < count % spread)),
                "--start",
                str(t0),
                "--stop",
                str(t1),
                "--read-every",
                str(args.read_every),
            ],
            stdout=subprocess.PIPE,
        )
        for i in range(spread)
    ]
    for client in clients:
        pin(client, others)
    time.sleep(max(0.0, t0 - time.time()))
    core = min(os.sched_getaffinity(stream.pid))
    polls0, (user0, system0) = polls(port), peers.cpu_times(stream.pid)
    stolen0 = peers.stolen_seconds(core)
    time.sleep(max(0.0, t1 - time.time()))
    polls1, (user1, system1) = polls(port), peers.cpu_times(stream.pid)
    stolen = (peers.stolen_seconds(core) - stolen0) / args.seconds
    counts = [json.loads(c.communicate()[0]) for c in clients]
    latencies = sorted(x for c in counts for x in c["latencies"])
    read = sorted(x for c in counts for x in c["read_latencies"])
    expected_frames = count * args.seconds * 1000 / args.change_ms
    held = (polls1 - polls0) / (args.seconds * 1000 / args.interval_ms)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    read_p99 = read[int(len(read) * 0.99)] * 1000
    after_poll = sorted(x for c in counts for x in c["after_poll"])
    after_poll_p99 = after_poll[int(len(after_poll) * 0.99)] * 1000
    paused = paused_share(c["arrivals"] for c in counts)
    print(
        f"| {name} | {count} | {p50:.1f} ms | {p99:.1f} ms | {latencies[-1] * 1000:.1f} ms | "
        f"{read_p99:.1f} ms | {after_poll_p99:.1f} ms | {paused:.0%} | "
        f"{len(latencies) / expected_frames:.1%} | {held:.1%} | "
        f"{(user1 - user0) / args.seconds:.1%} + {(system1 - system0) / args.seconds:.1%} | "
        f"{stolen:.1%} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 1000])
    parser.add_argument(
        "--streams",
        nargs="+",
        choices=STREAMS,
        default=list(STREAMS),
        help="measure the bridge, the bare stream (bench/bare_stream.py), or both in turn",
    )
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--shared-cores",
        action="store_true",
        help="let the clients and the farm run on the bridge's core too",
    )
    parser.add_argument(
        "--steer-loopback",
        action="store_true",
        help="steer loopback receive work to the cores other than the first (needs root)",
    )
    parser.add_argument("--registers", type=int, default=10)
    parser.add_argument("--interval-ms", type=int, default=100)
    parser.add_argument(
        "--change-ms", type=int, default=137, help="no common factor with the interval"
    )
    parser.add_argument(
        "--read-every", type=float, default=2.0, help="ms between the clients' rounds of reads"
    )
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    farm = peers.start_farm(1, args.registers, FARM_PORT, change_ms=args.change_ms)
    cores = os.sched_getaffinity(0)
    others = None if args.shared_cores or len(cores) < 2 else cores - {min(cores)}
    pin(farm, others)
    steered = cores - {min(cores)} if args.steer_loopback else None
    try:
        with peers.loopback_steered_to(steered), tempfile.TemporaryDirectory() as folder:
            where = f"; the stream on core {min(cores)}, the rest on {sorted(others or ())}"
            print(
                f"1 device × {args.registers} registers every {args.interval_ms} ms, "
                f"values changing every {args.change_ms} ms; "
                f"subscribers over {args.processes} processes, reading every "
                f"{args.read_every:g} ms" + where * bool(others) + f"; {peers.loopback_steering()}"
            )
            print(
                "| stream | subscribers | p50 | p99 | max | p99 read | p99 after the poll "
                "| frames paused | frames "
                "| poll rate held "
                "| stream CPU, user + system | stolen |"
            )
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for count in args.subscribers:
                for name in args.streams:
                    stream, port = start_stream(name, Path(folder), args)
                    try:
                        pin(stream, {min(cores)} if others else None)
                        run(name, count, args.processes, args, stream, port, others)
                    finally:
                        peers.stop(stream)
    finally:
        peers.stop(farm)


if __name__ == "__main__":
    main()
