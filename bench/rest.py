"""The latest-point REST route against a bare aiohttp handler returning the same JSON.

Both servers run in processes of their own and take turns under wrk (20 connections, one
thread), phase after phase; the bare handler answers the reading the bridge answered,
with ``web.json_response`` and no middleware, as the simplest aiohttp service would.

    flock /work/locks/suite .venv/bin/python bench/rest.py [--phases 3 --seconds 8]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import peers

FARM_PORT, BRIDGE_PORT, BARE_PORT = 5960, 5994, 5995
PATH = "/api/v1/devices/d0/points/p0"


def serve_bare(port: int, body: str) -> None:
    from aiohttp import web

    document = json.loads(body)

    async def point(request: web.Request) -> web.Response:
        return web.json_response(document)

    app = web.Application()
    app.router.add_get(PATH, point)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def wrk(port: int, seconds: float, server: subprocess.Popen[bytes]) -> tuple[float, float]:
    """Requests per second, and the server's CPU microseconds per request."""
    cpu = peers.cpu_seconds(server.pid)
    out = subprocess.run(
        ["wrk", "-t1", "-c20", f"-d{round(seconds)}s", f"http://127.0.0.1:{port}{PATH}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    rate = float(match.group(1))
    return rate, (peers.cpu_seconds(server.pid) - cpu) / (rate * seconds) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--serve-bare", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(BARE_PORT, args.serve_bare)
        return
    farm = peers.start_farm(1, 10, FARM_PORT)
    with tempfile.TemporaryDirectory() as folder:
        config = peers.bridge_file(Path(folder), 1, 10, 1.0, FARM_PORT)
        bridge = peers.start_bridge(Path(folder), config, BRIDGE_PORT, 1000)
        with urllib.request.urlopen(f"http://127.0.0.1:{BRIDGE_PORT}{PATH}") as answer:
            body = answer.read().decode()
        bare = subprocess.Popen([sys.executable, __file__, "--serve-bare", body])
        try:
            peers.wait_http(f"http://127.0.0.1:{BARE_PORT}{PATH}", bare)
            rates: dict[str, list[tuple[float, float]]] = {"device-bridge": [], "bare aiohttp": []}
            for _ in range(args.phases):
                rates["device-bridge"].append(wrk(BRIDGE_PORT, args.seconds, bridge))
                rates["bare aiohttp"].append(wrk(BARE_PORT, args.seconds, bare))
        finally:
            peers.stop(bare)
            peers.stop(bridge)
            peers.stop(farm)
    print(f"GET {PATH}, wrk -t1 -c20, {args.phases} phases of {args.seconds:g} s each")
    print("| server | requests/s (each phase) | best | CPU per request (median) |")
    print("|---|---|---:|---:|")
    for name, runs in rates.items():
        each = ", ".join(f"{r:,.0f}" for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"| {name} | {each} | {max(r for r, _ in runs):,.0f} | {cpu:.0f} µs |")
    ours, bare_runs = rates["device-bridge"], rates["bare aiohttp"]
    ratio = max(r for r, _ in ours) / max(r for r, _ in bare_runs)
    cpu_ratio = statistics.median(c for _, c in bare_runs) / statistics.median(c for _, c in ours)
    print(f"| bridge / bare | | {ratio:.2f} | {cpu_ratio:.2f} (bare's CPU / ours) |")


if __name__ == "__main__":
    main()
