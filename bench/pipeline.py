"""Points per second through the hot path on one core: decode, store, publish.

Decodes 125-register blocks of mixed points (a third scaled) from a reply's bytes into the
device's column, as the Modbus link does, applies them to the store as one device poll
each (every value changed, so everything is published), and fans the readings out to
subscribers through the hub, encoding one JSON frame per poll. No I/O: this is the
bridge's own cost per point, the ceiling of what one core can poll.

    .venv/bin/python bench/pipeline.py [--polls 2000] [--subscribers 10]
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import time

from bridge.hub import Hub
from bridge.store import Store
from drivers.base import PointFailure, PointValues, Value
from drivers.modbus.blocks import BlockDecoder
from drivers.modbus.config import ModbusTcpDevice
from drivers.modbus.planner import plan_reads

TYPES = ("uint16", "int16", "float32", "uint32")


def device() -> ModbusTcpDevice:
    points = []
    address = 0
    for i in range(60):
        kind = TYPES[i % len(TYPES)]
        point = {"id": f"p{i}", "table": "holding", "address": address, "type": kind}
        if i % 3 == 0:
            point["scale"] = 0.1
        points.append(point)
        address += 2 if kind in ("float32", "uint32") else 1
    return ModbusTcpDevice.model_validate(
        {"id": "bench", "driver": "modbus-tcp", "connection": {"host": "h"}, "points": points}
    )


def run_once(polls: int, subscriber_count: int) -> float:
    """Seconds of CPU time for ``polls`` polls through decode, store and hub."""
    config = device()
    (block,) = plan_reads(config.points, max_gap=10)
    store = Store([config], history=1000)
    hub = Hub(queue_size=polls + 1)
    subscribers = [hub.subscribe() for _ in range(subscriber_count)]
    # the reply's data bytes, decoded as the Modbus link does: into the device's column
    replies = [
        struct.pack(f">{block.count}H", *[(poll + i) % 65536 for i in range(block.count)])
        for poll in range(polls)
    ]
    ids = tuple(point.id for point in config.points)
    decoder = BlockDecoder(block, [ids.index(point.id) for point in block.points])
    started = time.process_time()
    for poll, data in enumerate(replies):
        column: list[Value | PointFailure | None] = [None] * len(ids)
        decoder.decode_into(data, column)
        published = store.apply_poll("bench", PointValues(ids, column), float(poll))
        hub.publish_readings("bench", published)
    elapsed = time.process_time() - started
    assert all(s.queue.qsize() == polls for s in subscribers)
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    points = args.polls * len(device().points)
    print(
        f"{len(device().points)} points a poll, {args.polls} polls, "
        f"{args.subscribers} subscribers, every value changed"
    )
    rates = sorted(points / run_once(args.polls, args.subscribers) for _ in range(args.repeat))
    print("runs: " + ", ".join(f"{rate:,.0f}" for rate in rates) + " points/s")
    print(
        f"best {rates[-1]:,.0f} points/s on one core, median {rates[len(rates) // 2]:,.0f} "
        "(a virtual machine's speed varies from run to run: compare best with best)"
    )


if __name__ == "__main__":
    asyncio.run(main())
