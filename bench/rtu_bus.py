"""How well the bridge uses an RS-485 line: transactions per second against the maximum.

Polls two Modbus RTU units on one bus through the wire-time simulator (which holds every
frame for as long as it would take on a real line at the configured baud rate), run in a
process of its own as a device would be, and prints,
for each baud rate, the transactions per second achieved next to the line's theoretical
maximum for those frame sizes. The arithmetic is in docs/performance.md.

    .venv/bin/python bench/rtu_bus.py [--seconds 5] [--registers 10]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from rtu_simulator import wire_time_bus

from bridge.config import parse_config
from bridge.service import Bridge
from drivers.modbus.config import RtuConnection
from drivers.modbus.rtu import silent_interval

BAUD_RATES = (9600, 19200, 115200)
REQUEST_BYTES = 8  # unit, function, address, count, CRC


def theoretical_max(baudrate: int, registers: int) -> tuple[float, float, int]:
    """(transactions per second, seconds per transaction, reply bytes) at 8N1."""
    connection = RtuConnection(port="-", baudrate=baudrate)
    reply = 5 + 2 * registers
    gap = silent_interval(connection)
    # request on the wire, silence before the reply, reply on the wire, silence after it
    seconds = (REQUEST_BYTES + reply) * connection.char_time + 2 * gap
    return 1 / seconds, seconds, reply


async def measure(baudrate: int, registers: int, seconds: float) -> float:
    """Transactions per second the bridge achieves on a wire-time bus at this baud rate.

    The simulator runs in a process of its own, as a device would (``rtu_simulator``).
    """
    with tempfile.TemporaryDirectory() as folder:
        values = [
            {"table": "input", "address": i, "type": "uint16", "value": i + 1}
            for i in range(registers)
        ]
        units = {3: {"values": values}, 4: {"values": values}}
        async with wire_time_bus(folder, baudrate, units) as path:
            points = [
                {"id": f"r{i}", "table": "input", "address": i, "type": "uint16"}
                for i in range(registers)
            ]
            devices = [
                {"id": f"meter-{unit}", "driver": "modbus-rtu", "unit": unit,
                 "connection": {"port": path, "baudrate": baudrate},
                 "interval": 0.0005, "timeout": 0.5, "points": points}
                for unit in (3, 4)
            ]  # fmt: skip
            bridge = Bridge(parse_config({"devices": devices}))
            await bridge.start()
            try:
                await _warmed_up(bridge)
                before = _answered(bridge)
                started = time.monotonic()
                await asyncio.sleep(seconds)
                elapsed = time.monotonic() - started
                done = _answered(bridge) - before
                failures = sum(d.poll_failures for d in bridge.devices.values())
            finally:
                await bridge.stop()
    if failures:
        print(f"  ({failures} failed polls at {baudrate} baud)")
    return done / elapsed


def _answered(bridge: Bridge) -> int:
    return sum(d.answered for d in bridge.devices.values())


async def _warmed_up(bridge: Bridge) -> None:
    """Wait until the port is open and both devices have answered a few times."""
    deadline = time.monotonic() + 10
    while min(d.polls - d.poll_failures for d in bridge.devices.values()) < 5:
        if time.monotonic() > deadline:
            raise RuntimeError("the bus did not come up")
        await asyncio.sleep(0.05)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--registers", type=int, default=10)
    args = parser.parse_args()
    print(f"two units, one read of {args.registers} input registers each per poll, 8N1")
    print(f"{'baud':>7} {'frames (B)':>11} {'max tx/s':>9} {'achieved':>9} {'ratio':>6}")
    for baudrate in BAUD_RATES:
        best, _, reply = theoretical_max(baudrate, args.registers)
        achieved = await measure(baudrate, args.registers, args.seconds)
        print(
            f"{baudrate:>7} {f'{REQUEST_BYTES}+{reply}':>11} {best:>9.1f} {achieved:>9.1f} "
            f"{achieved / best:>6.1%}",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
