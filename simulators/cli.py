"""``device-bridge simulate KIND``: one simulator standalone, until Ctrl-C.

Kinds: ``modbus-tcp`` (listens on a TCP port), ``modbus-rtu`` and ``serial-line`` (each
makes a pty and prints its path, which a client opens like a serial port).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any, Final

from simulators.modbus.profile import ProfileError
from simulators.modbus.rtu import run_rtu_simulator
from simulators.modbus.tcp import run_tcp_simulator
from simulators.serial_line import FORMATS, MODES, run_line_simulator

KINDS: Final = ("modbus-tcp", "modbus-rtu", "serial-line")
DEFAULT_BAUDRATE: Final = 19200
DEFAULT_INTERVAL: Final = 0.1

#: options given as None when not on the command line, and the kinds they apply to
_OPTION_KINDS: Final = {
    "--baudrate": ("modbus-rtu",),
    "--wire-time": ("modbus-rtu",),
    "--mode": ("serial-line",),
    "--format": ("serial-line",),
    "--interval": ("serial-line",),
    "--link-dir": ("modbus-rtu", "serial-line"),
    "--profile": ("modbus-tcp", "modbus-rtu"),
}


class _UsageError(Exception):
    pass


async def _until_signal(run: Coroutine[Any, Any, None]) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await run


def simulate(
    kind: str,
    host: str,
    port: int,
    profile: str | None,
    *,
    baudrate: int | None = None,
    wire_time: bool = False,
    mode: str | None = None,
    format: str | None = None,
    interval: float | None = None,
    link_dir: str | None = None,
) -> int:
    """Run the simulator of this kind until SIGINT or SIGTERM; returns the exit status.

    Options left None (or False) were not given; giving one that does not apply to
    ``kind`` is an error (status 2), as are a bad profile and a bad value.
    """
    given = {
        "--baudrate": baudrate,
        "--wire-time": wire_time or None,
        "--mode": mode,
        "--format": format,
        "--interval": interval,
        "--link-dir": link_dir,
        "--profile": profile,
    }
    try:
        if kind not in KINDS:
            raise _UsageError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
        for option, value in given.items():
            if value is not None and kind not in _OPTION_KINDS[option]:
                raise _UsageError(
                    f"{option} applies to {' and '.join(_OPTION_KINDS[option])}, not {kind}"
                )
        if baudrate is not None and baudrate <= 0:
            raise _UsageError(f"--baudrate must be positive, not {baudrate}")
        if interval is not None and not interval > 0:
            raise _UsageError(f"--interval must be positive, not {interval:g}")
        if mode is not None and mode not in MODES:
            raise _UsageError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
        if format is not None and format not in FORMATS:
            raise _UsageError(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
        if link_dir is not None and not os.path.isdir(link_dir):
            missing = "is not a folder" if os.path.exists(link_dir) else "does not exist"
            raise _UsageError(f"--link-dir {link_dir} {missing}: create it first")
    except _UsageError as exc:
        print(f"device-bridge simulate: {exc}", file=sys.stderr)
        return 2

    run: Coroutine[Any, Any, None]
    if kind == "modbus-tcp":
        run = run_tcp_simulator(host, port, profile)
    elif kind == "modbus-rtu":
        run = run_rtu_simulator(profile, baudrate or DEFAULT_BAUDRATE, wire_time, link_dir=link_dir)
    else:
        run = run_line_simulator(
            mode or "query",
            format or "sics",
            interval or DEFAULT_INTERVAL,
            link_dir=link_dir,
        )
    try:
        asyncio.run(_until_signal(run))
    except ProfileError as exc:
        print(f"device-bridge simulate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"listen on {host}:{port}" if kind == "modbus-tcp" else "make a pty"
        print(f"device-bridge simulate: cannot {where}: {exc}", file=sys.stderr)
        return 1
    return 0
