"""CPU per point of the hot path with north over MQTT off and on (a local Mosquitto).

Feeds polls of 60 changed points through the bridge's own publish path (store, hub with
one subscriber, and with MQTT on: the readings frame into the SQLite outbox, its writer
thread, and the link sending it to the broker and taking the PUBACKs), paced in bursts so
the loop also sends. CPU time of the whole process (every thread) until the outbox is
empty, divided by the points published. Needs ``mosquitto`` (apt-get install mosquitto).

    .venv/bin/python bench/north.py [--polls 3000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from north_outage import Mosquitto

from bridge.config import parse_config
from bridge.service import Bridge

POINTS = 60
BURST = 20  # polls between yields to the loop: a bridge with many devices looks like this


def config(mqtt: dict[str, Any]) -> Any:
    points = [{"id": f"p{i}", "table": "holding", "address": 2 * i, "type": "uint32"}
              for i in range(POINTS)]  # fmt: skip
    device = {"id": "bench", "driver": "modbus-tcp", "connection": {"host": "127.0.0.1"},
              "points": points}  # fmt: skip
    return parse_config({"server": mqtt, "devices": [device]})


async def run_once(polls: int, mqtt: dict[str, Any]) -> float:
    """CPU seconds for ``polls`` polls, until north (if on) has them all acknowledged."""
    bridge = Bridge(config(mqtt))
    if bridge.north is not None:
        await bridge.north.start()
        while not bridge.north.connected:
            await asyncio.sleep(0.01)
    bridge.hub.subscribe()
    bridge.hub.queue_size = polls + 1
    runtime = bridge.devices["bench"]
    started = time.process_time()
    for poll in range(polls):
        results = {f"p{i}": poll * POINTS + i for i in range(POINTS)}
        bridge.poll_succeeded(runtime, results, time.time())
        if poll % BURST == 0:
            await asyncio.sleep(0)
    if bridge.north is not None:
        while bridge.north.outbox.depth:
            await asyncio.sleep(0.001)
    elapsed = time.process_time() - started
    if bridge.north is not None:
        await bridge.north.stop()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        broker = Mosquitto(Path(directory))
        broker.start()
        port = broker.port
        try:
            points = args.polls * POINTS
            print(f"{POINTS} points a poll, {args.polls} polls, every value changed")
            for name, mqtt in (
                ("MQTT off", {}),
                ("MQTT on ", {"mqtt_url": f"mqtt://127.0.0.1:{port}", "mqtt_topic": "bench",
                              "mqtt_outbox": str(Path(directory) / "outbox.sqlite")}),
            ):  # fmt: skip
                runs = sorted([await run_once(args.polls, mqtt) for _ in range(args.repeat)])
                best = runs[0] / points * 1e6
                median = runs[len(runs) // 2] / points * 1e6
                print(f"{name}: best {best:.2f} µs CPU per point, median {median:.2f} "
                      f"({points / runs[0]:,.0f} points/s)")  # fmt: skip
        finally:
            broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
