"""WebSocket subscribers for the benchmarks, in a process of their own.

Opens ``--clients`` connections to a stream URL (the bridge's or Node-RED's: both send
``{"type": "readings", "readings": [...]}`` frames), counts the readings received between
``--start`` and ``--stop`` (Unix times) and prints one JSON line: readings, frames and,
with ``--clock``, the latency of every frame that carries the farm's clock registers
(device ``d0``, points ``p0``-``p2``: the time the values changed, in ms).

    python bench/subscribers.py ws://127.0.0.1:5990/api/v1/stream --clients 250 \
        --start T0 --stop T1 [--clock]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
import orjson


class Counts:
    def __init__(self) -> None:
        self.readings = 0
        self.frames = 0
        self.latencies: list[float] = []


async def client(url: str, start: float, stop: float, clock: bool, counts: Counts) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, max_msg_size=0, autoping=True) as ws,
    ):
        clock_parts: dict[str, int] = {}  # the latest of p0-p2: only changes are sent
        async for message in ws:
            now = time.time()
            if now >= stop:
                return
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = orjson.loads(message.data)
            if frame.get("type") not in ("readings", "snapshot"):
                continue
            readings = frame["readings"]
            changed = False
            if clock:
                for r in readings:
                    if r["device"] == "d0" and r["point"] in ("p0", "p1", "p2"):
                        clock_parts[r["point"]] = r["value"]
                        changed = True
            if frame["type"] != "readings" or now < start:
                continue
            counts.frames += 1
            counts.readings += len(readings)
            if changed and len(clock_parts) == 3:
                p0, p1, p2 = clock_parts["p0"], clock_parts["p1"], clock_parts["p2"]
                counts.latencies.append(now - (p0 << 32 | p1 << 16 | p2) / 1000)


async def run(args: argparse.Namespace) -> None:
    counts = Counts()
    tasks = [
        asyncio.create_task(client(args.url, args.start, args.stop, args.clock, counts))
        for _ in range(args.clients)
    ]
    await asyncio.wait(tasks, timeout=max(0.0, args.stop - time.time()) + 5)
    for task in tasks:
        task.cancel()
    print(
        json.dumps(
            {"readings": counts.readings, "frames": counts.frames, "latencies": counts.latencies}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--stop", type=float, required=True)
    parser.add_argument("--clock", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
