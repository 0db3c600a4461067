"""How long ``device-bridge scan`` takes to sweep a whole RS-485 bus: units 1..247.

Runs the wire-time RTU simulator (every frame held as long as a real line at the baud rate
would take) in a process of its own with three units on it, then ``device-bridge scan`` as
a user would, and prints the wall time of the sweep and of the survey of the units found.

    .venv/bin/python bench/scan_sweep.py [--baudrate 19200] [--timeout 0.1] [--range 0-99]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time

from rtu_simulator import wire_time_bus

UNITS = (7, 100, 230)


async def sweep(baudrate: int, per_unit: float, window: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        units = {unit: {"values": [{"table": "holding", "address": 0, "value": unit}]}
                 for unit in UNITS}  # fmt: skip
        async with wire_time_bus(folder, baudrate, units) as port:
            for units_arg, label in (("1-247", "sweep of units 1-247 and survey"),
                                     (",".join(map(str, UNITS)), "survey alone")):  # fmt: skip
                started = time.monotonic()
                scan = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bridge", "scan", "modbus-rtu", "--port", port,
                    "--baudrate", str(baudrate), "--units", units_arg, "--timeout",
                    str(per_unit), "--range", window, "--json",
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                out, _ = await scan.communicate()
                elapsed = time.monotonic() - started
                found = [u["unit"] for u in json.loads(out)["units"]]
                assert found == list(UNITS), found
                print(f"{baudrate} baud, {per_unit:g} s per unit, range {window}: "
                      f"{label}: {elapsed:.1f} s (found {found})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baudrate", type=int, default=19200)
    parser.add_argument("--timeout", type=float, default=0.1)
    parser.add_argument("--range", default="0-99")
    args = parser.parse_args()
    asyncio.run(sweep(args.baudrate, args.timeout, args.range))


if __name__ == "__main__":
    main()
