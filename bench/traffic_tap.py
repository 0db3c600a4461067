"""What traffic capture costs a link: requests per second with no viewer and with one.

Polls the demo's boiler (Modbus TCP, 4 requests a poll) and the two flow meters on the
simulated RS-485 bus (Modbus RTU, 19200 baud, 2 requests a poll each) through the real
links, as the poller does, in alternating rounds: with the link's tap None (nobody
watching: the state the bridge is in unless the page's traffic view is open) and with a
tap attached (every request copied, hex-formatted and encoded into the ring). Also times
the check a link makes per request when nobody watches (``link.tap is not None``).

    .venv/bin/python bench/traffic_tap.py [--polls 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import timeit
from typing import Any

from bridge.demo import demo_simulators
from bridge.traffic import Traffic
from drivers.base import Link


async def poll_rate(link: Link[Any], devices: list[Any], polls: int) -> float:
    """Device polls a second, over ``polls`` rounds of polling every device once."""
    started = time.perf_counter()
    for _ in range(polls):
        for device in devices:
            await link.read(device)
    return polls * len(devices) / (time.perf_counter() - started)


async def measure(name: str, link: Link[Any], devices: list[Any], args: argparse.Namespace) -> None:
    traffic = Traffic()
    traffic.add(name, link)
    await link.open()
    try:
        await poll_rate(link, devices, 20)  # warm up: connection, planner, caches
        idle, watched = [], []
        for _ in range(args.rounds):
            idle.append(await poll_rate(link, devices, args.polls))
            viewer, _ = traffic.watch()
            watched.append(await poll_rate(link, devices, args.polls))
            traffic.leave(viewer)
        assert link.tap is None
        tap = traffic.taps[name]
        best_idle, best_watched = max(idle), max(watched)
        print(f"{name}: device polls/s, {args.rounds} rounds of {args.polls} polls")
        print(f"  nobody watching: best {best_idle:,.0f}, median {statistics.median(idle):,.0f}")
        median = statistics.median(watched)
        print(f"  traffic watched: best {best_watched:,.0f}, median {median:,.0f}")
        print(f"  ({tap.captured} exchanges captured)")
        print(f"  watched / idle (best): {best_watched / best_idle:.3f}")
    finally:
        await link.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    class Holder:
        tap = None

    holder = Holder()
    check = timeit.Timer("holder.tap is not None", globals={"holder": holder})
    loops, seconds = check.autorange()
    print(f"the check per request with nobody watching: {seconds / loops * 1e9:.0f} ns")

    async with demo_simulators() as sims:
        for plan in sims.config().links:
            if plan.driver.name in ("modbus-tcp", "modbus-rtu"):
                link = plan.driver.open_link(plan.key, plan.devices)
                await measure(plan.key, link, list(plan.devices), args)


if __name__ == "__main__":
    asyncio.run(main())
