"""One case per driver for the driver contract suite: a simulator and a device on it.

A case starts its driver's simulator, builds device entries for it, and gives the test the
switches the contract suite needs. Adding a driver means adding a case here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from conftest import BOILER_POINTS, boiler_state, tcp_device

from bridge.registry import available_drivers
from drivers.base import DeviceConfig, Driver
from simulators.modbus import ModbusSimulator
from simulators.modbus.rtu import ModbusRtuServer
from simulators.modbus.tcp import ModbusTcpServer
from simulators.serial_line import LineInstrument


class Running(Protocol):
    """A simulator running for one test."""

    def device(self, device_id: str = "dev", **extra: Any) -> dict[str, Any]:
        """A device entry (as in the file) for a device this simulator answers for."""

    def unanswered_device(self, device_id: str = "mute", **extra: Any) -> dict[str, Any]:
        """A device entry on the same link that never answers."""

    def set_silent(self, silent: bool) -> None:
        """Stop (or resume) answering anything."""

    def change(self) -> tuple[str, Any]:
        """Change one value in the simulator; the point id and the value to expect."""

    def held(self, point_id: str) -> Any:
        """What the simulator holds now for a point that can be written."""

    async def stop(self) -> None:
        """Take the simulator away (the link's far end disappears)."""


@dataclass
class DriverCase:
    """A driver, its simulator, and the values the suite expects to read.

    ``writable`` is a point the device entry lets the bridge write, with a value it takes
    and one outside its ``min``/``max``; ``read_only`` a point it must refuse to write.
    """

    name: str
    expected: dict[str, Any]
    writable: tuple[str, Any, Any]
    read_only: str

    @property
    def driver(self) -> Driver[Any]:
        return available_drivers()[self.name]

    def config(self, entry: dict[str, Any]) -> DeviceConfig:
        config = self.driver.device_model.model_validate(entry)
        assert isinstance(config, DeviceConfig)
        return config

    def running(self) -> Any:
        raise NotImplementedError


class _ModbusRunning:
    """The boiler as unit 1 of a Modbus simulator; transports differ only in the device."""

    def __init__(self, sim: ModbusSimulator, server: ModbusTcpServer | ModbusRtuServer) -> None:
        self.sim, self.server = sim, server

    def set_silent(self, silent: bool) -> None:
        self.sim.silent = silent

    def change(self) -> tuple[str, Any]:
        self.sim.units[1].set_value("holding", 0, "float32", -7.25)
        return "temperature", -7.25

    def held(self, point_id: str) -> Any:
        assert point_id == "setpoint"
        return self.sim.units[1].get_value("holding", 20, "float32", word_order="little")

    async def stop(self) -> None:
        await self.server.stop()


class _ModbusTcpRunning(_ModbusRunning):
    def device(self, device_id: str = "dev", **extra: Any) -> dict[str, Any]:
        assert isinstance(self.server, ModbusTcpServer)
        return tcp_device(device_id, self.server.port, **extra)

    def unanswered_device(self, device_id: str = "mute", **extra: Any) -> dict[str, Any]:
        assert isinstance(self.server, ModbusTcpServer)
        return tcp_device(device_id, self.server.port, unit=99, **extra)


class ModbusTcpCase(DriverCase):
    @asynccontextmanager
    async def running(self) -> AsyncIterator[_ModbusTcpRunning]:
        sim = ModbusSimulator({1: boiler_state()})
        server = ModbusTcpServer(sim)
        await server.start("127.0.0.1", 0)
        try:
            yield _ModbusTcpRunning(sim, server)
        finally:
            await server.stop()


def line_device(device_id: str, path: str, **extra: Any) -> dict[str, Any]:
    """A serial-line device entry for a JSON line instrument, with fast test timings."""
    entry: dict[str, Any] = {
        "id": device_id, "driver": "serial-line", "connection": {"port": path},
        "command": "SI\r\n", "parse": {"json": True},
        "points": [{"id": "weight", "unit": "g"},
                   {"id": "temperature", "unit": "°C", "writable": True,
                    "write": "T {value:.1f}\r\n", "min": -20, "max": 300},
                   {"id": "stable", "type": "bool"}],
        "interval": 0.05, "timeout": 0.2, "backoff_max": 0.2,
    }  # fmt: skip
    entry.update(extra)
    return entry


class _SerialLineRunning:
    def __init__(self, sim: LineInstrument) -> None:
        self.sim = sim

    def device(self, device_id: str = "dev", **extra: Any) -> dict[str, Any]:
        return line_device(device_id, self.sim.path, **extra)

    def unanswered_device(self, device_id: str = "mute", **extra: Any) -> dict[str, Any]:
        # a JSON instrument ignores commands it does not know
        return line_device(device_id, self.sim.path, command="XX\r\n", **extra)

    def set_silent(self, silent: bool) -> None:
        self.sim.silent = silent

    def change(self) -> tuple[str, Any]:
        self.sim.values["weight"] = -7.25
        return "weight", -7.25

    def held(self, point_id: str) -> Any:
        return self.sim.values[point_id]

    async def stop(self) -> None:
        await self.sim.stop()


class SerialLineCase(DriverCase):
    @asynccontextmanager
    async def running(self) -> AsyncIterator[_SerialLineRunning]:
        async with LineInstrument(format="json", setters={"T": "temperature"}) as sim:
            yield _SerialLineRunning(sim)


class _SerialLineStreamRunning(_SerialLineRunning):
    def device(self, device_id: str = "dev", **extra: Any) -> dict[str, Any]:
        return line_device(device_id, self.sim.path, mode="stream", command=None, **extra)


class SerialLineStreamCase(DriverCase):
    """serial-line in stream mode: the instrument sends a line every 20 ms by itself."""

    @asynccontextmanager
    async def running(self) -> AsyncIterator[_SerialLineStreamRunning]:
        async with LineInstrument(
            mode="stream", format="json", stream_interval=0.02, setters={"T": "temperature"}
        ) as sim:
            yield _SerialLineStreamRunning(sim)


def rtu_boiler_device(device_id: str, path: str, unit: int, **extra: Any) -> dict[str, Any]:
    """The boiler's points as a modbus-rtu device on the pty bus at ``path``."""
    entry: dict[str, Any] = {
        "id": device_id, "driver": "modbus-rtu", "unit": unit,
        "connection": {"port": path, "baudrate": 19200},
        "interval": 0.05, "timeout": 0.2, "backoff_max": 0.2, "points": BOILER_POINTS,
    }  # fmt: skip
    entry.update(extra)
    return entry


class _ModbusRtuRunning(_ModbusRunning):
    def device(self, device_id: str = "dev", **extra: Any) -> dict[str, Any]:
        assert isinstance(self.server, ModbusRtuServer)
        return rtu_boiler_device(device_id, self.server.path, 1, **extra)

    def unanswered_device(self, device_id: str = "mute", **extra: Any) -> dict[str, Any]:
        assert isinstance(self.server, ModbusRtuServer)
        return rtu_boiler_device(device_id, self.server.path, 99, **extra)


class ModbusRtuCase(DriverCase):
    @asynccontextmanager
    async def running(self) -> AsyncIterator[_ModbusRtuRunning]:
        sim = ModbusSimulator({1: boiler_state()})
        async with ModbusRtuServer(sim, baudrate=19200) as server:
            yield _ModbusRtuRunning(sim, server)


BOILER_VALUES = {"temperature": 21.5, "pressure": 1.52, "pump_on": True, "setpoint": 65.0,
                 "alarm": True, "model": "BOILER-1"}  # fmt: skip

MODBUS_TCP = ModbusTcpCase(
    "modbus-tcp", expected=BOILER_VALUES, writable=("setpoint", 70.5, 95.0), read_only="temperature"
)
MODBUS_RTU = ModbusRtuCase(
    "modbus-rtu", expected=BOILER_VALUES, writable=("setpoint", 70.5, 95.0), read_only="temperature"
)
SERIAL_LINE = SerialLineCase(
    "serial-line",
    expected={"weight": 123.45, "temperature": 21.5, "stable": True},
    writable=("temperature", 180.5, 301.0),
    read_only="weight",
)
SERIAL_LINE_STREAM = SerialLineStreamCase(
    "serial-line",
    expected=SERIAL_LINE.expected,
    writable=SERIAL_LINE.writable,
    read_only=SERIAL_LINE.read_only,
)
CASES: list[DriverCase] = [MODBUS_TCP, MODBUS_RTU, SERIAL_LINE]  # fmt: skip

assert {p["id"] for p in BOILER_POINTS} == set(BOILER_VALUES)
