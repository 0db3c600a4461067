"""The wire-time RTU simulator in a process of its own, for the bench scripts.

A device runs beside the bridge, not inside it: sharing the bridge's event loop and GIL
would charge the bridge for the simulator's work.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml


@asynccontextmanager
async def wire_time_bus(
    folder: str, baudrate: int, units: dict[int, dict[str, Any]]
) -> AsyncIterator[str]:
    """Serve ``units`` (a profile's ``units:``) on a pty; yields the port's stable path."""
    profile = Path(folder) / "profile.yaml"
    profile.write_text(yaml.safe_dump({"units": units}))
    simulator = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "simulate", "modbus-rtu", "--wire-time",
        "--baudrate", str(baudrate), "--profile", str(profile), "--link-dir", folder,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert simulator.stdout is not None
        await simulator.stdout.readline()  # where it listens: it is ready
        yield str(Path(folder) / "ttyRTU0")
    finally:
        simulator.terminate()
        await simulator.wait()
