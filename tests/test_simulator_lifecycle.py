"""The one start/stop shape of every simulator (simulators/lifecycle.py, pty_device.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from simulators.lifecycle import Simulator
from simulators.modbus import ModbusSimulator
from simulators.modbus.rtu import ModbusRtuServer
from simulators.modbus.tcp import ModbusTcpServer
from simulators.pty_device import PtyDevice
from simulators.serial_line import LineInstrument

MAKERS: dict[str, Callable[[str], Simulator[int] | Simulator[str]]] = {
    "modbus-tcp": lambda _: ModbusTcpServer(ModbusSimulator()),
    "modbus-rtu": lambda links: ModbusRtuServer(ModbusSimulator(), link_dir=links),
    "serial-line": lambda links: LineInstrument(link_dir=links),
}


@pytest.mark.parametrize("kind", MAKERS)
async def test_start_stop_and_async_with_have_one_shape(kind: str, tmp_path: Path) -> None:
    sim = MAKERS[kind](str(tmp_path))
    assert not sim.running
    address = await sim.start()
    assert sim.running
    assert address
    with pytest.raises(RuntimeError, match="already started"):
        await sim.start()
    await sim.stop()
    assert not sim.running
    await sim.stop()  # idempotent
    async with sim as entered:
        assert entered is sim
        assert sim.running
    assert not sim.running


@pytest.mark.parametrize("kind", ["modbus-rtu", "serial-line"])
async def test_a_pty_device_unplugs_and_replugs_under_the_same_path(
    kind: str, tmp_path: Path
) -> None:
    sim = MAKERS[kind](str(tmp_path))
    assert isinstance(sim, PtyDevice)
    with pytest.raises(RuntimeError, match="not started"):
        await sim.replug()
    async with sim:
        path = sim.path
        assert target(path).startswith("/dev/pts/")
        sim.unplug()
        assert target(path) == ""
        assert await sim.replug() == path
        assert target(path).startswith("/dev/pts/")
    assert target(path) == ""


def target(link: str) -> str:
    """The pty a link path points at, or "" when there is none."""
    return os.path.realpath(link) if os.path.lexists(link) else ""
