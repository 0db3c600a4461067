"""``device-bridge simulate KIND``: one simulator standalone, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from simulators.modbus_tcp import run_tcp_simulator
from simulators.profile import ProfileError


async def _until_signal(kind: str, host: str, port: int, profile: str | None) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        if kind == "modbus-tcp":
            await run_tcp_simulator(host, port, profile)
        else:
            raise NotImplementedError(kind)


def simulate(kind: str, host: str, port: int, profile: str | None) -> int:
    """Run the simulator of this kind; returns the exit status."""
    if kind != "modbus-tcp":
        print(f"device-bridge simulate: {kind} is not available yet", file=sys.stderr)
        return 2
    try:
        asyncio.run(_until_signal(kind, host, port, profile))
    except ProfileError as exc:
        print(f"device-bridge simulate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"device-bridge simulate: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0
