"""The device fault matrix: every way a Modbus device or gateway answers wrongly, on every
transport, against simulators on real sockets and ptys. A wrong answer is never a value:
the device goes offline (or the write fails) and comes back when the fault ends.

docs/reliability.md lists each fault, what the bridge does, and the test here that shows it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from conftest import BOILER_POINTS, BridgeFactory, boiler_state, eventually, tcp_device

from bridge.server import RunningServer
from simulators.modbus import ModbusSimulator
from simulators.modbus.reply_faults import ReplyFault
from simulators.modbus.rtu import ModbusRtuServer
from simulators.modbus.tcp import ModbusTcpServer
from simulators.serial_line import LineInstrument

WRITER = "agent:s3cret"
AUTH = {"Authorization": "Bearer s3cret"}
READ_FAULTS: tuple[ReplyFault, ...] = ("function", "byte_count", "quantity")
WRITE_FAULTS: tuple[ReplyFault, ...] = ("function", "echo_address", "echo_value")
#: holding 0 (temperature) and 20 (setpoint), coil 0, input 10: a write of each kind
WRITTEN = {"setpoint": 70.5, "pump_on": False}


def rtu_entry(port: str, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "boiler", "driver": "modbus-rtu", "unit": 1,
        "connection": {"port": port, "baudrate": 115200},
        "interval": 0.05, "timeout": 0.1, "backoff_max": 0.2, "points": BOILER_POINTS,
    }  # fmt: skip
    entry.update(extra)
    return entry


@pytest.fixture(params=["tcp", "rtu"])
async def boiler(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, ModbusSimulator, Any]]:
    """The boiler as unit 1 behind Modbus TCP or on an RTU pty: (kind, simulator, server)."""
    sim = ModbusSimulator({1: boiler_state()})
    server: ModbusTcpServer | ModbusRtuServer
    if request.param == "tcp":
        server = ModbusTcpServer(sim)
    else:
        server = ModbusRtuServer(sim, baudrate=115200, link_dir=str(tmp_path))
    async with server:
        yield request.param, sim, server


def entry_for(boiler: tuple[str, ModbusSimulator, Any], **extra: Any) -> dict[str, Any]:
    kind, _, server = boiler
    if kind == "tcp":
        return tcp_device("boiler", server.port, **extra)
    return rtu_entry(server.path, **extra)


def published(running: RunningServer, point: str) -> list[Any]:
    return [r.value for r in running.bridge.store.history("boiler", point) if r.quality == "good"]


@pytest.mark.parametrize("fault", READ_FAULTS)
async def test_a_read_answered_by_a_reply_to_another_request_is_never_a_value(
    bridge_factory: BridgeFactory, boiler: tuple[str, ModbusSimulator, Any], fault: ReplyFault
) -> None:
    _, sim, _ = boiler
    # the input table holds other numbers where the holding registers are read from
    sim.units[1].set_value("input", 0, "float32", 99.5)
    running, _ = await bridge_factory([entry_for(boiler)])
    device = running.bridge.devices["boiler"]
    await eventually(lambda: device.status == "online")
    sim.reply_fault = fault
    await eventually(lambda: device.status == "offline")
    assert (
        "function" in (device.last_error or "")
        or "byte" in (device.last_error or "")
        or ("not a reply" in (device.last_error or ""))
    ), device.last_error
    reading = running.bridge.store.latest("boiler", "temperature")
    assert (reading.quality, reading.value) == ("stale", 21.5)
    assert set(published(running, "temperature")) == {21.5}
    assert set(published(running, "pump_on")) == {True}
    sim.reply_fault = None
    sim.units[1].set_value("holding", 0, "float32", 22.5)
    await eventually(lambda: running.bridge.store.latest("boiler", "temperature").value == 22.5)
    assert device.status == "online"


@pytest.mark.parametrize("fault", WRITE_FAULTS)
@pytest.mark.parametrize("point", sorted(WRITTEN))
async def test_a_write_not_echoed_exactly_is_a_failed_write(
    bridge_factory: BridgeFactory,
    boiler: tuple[str, ModbusSimulator, Any],
    fault: ReplyFault,
    point: str,
) -> None:
    _, sim, _ = boiler
    running, session = await bridge_factory([entry_for(boiler, interval=60)], write_token=WRITER)
    await eventually(lambda: running.bridge.devices["boiler"].status == "online")
    sim.reply_fault = fault
    url = f"api/v1/devices/boiler/points/{point}"
    async with session.put(url, json={"value": WRITTEN[point]}, headers=AUTH) as response:
        body = await response.json()
        assert response.status in (502, 504), body
    # no read-back value came from the faulty answer
    assert published(running, point) == [running.bridge.store.history("boiler", point)[0].value]
    sim.reply_fault = None
    async with session.put(url, json={"value": WRITTEN[point]}, headers=AUTH) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["value"] == WRITTEN[point]


async def tcp_bridge(
    bridge_factory: BridgeFactory, server: ModbusTcpServer, **extra: Any
) -> RunningServer:
    running, _ = await bridge_factory([tcp_device("boiler", server.port, **extra)])
    await eventually(lambda: running.bridge.devices["boiler"].status == "online")
    return running


@pytest.mark.parametrize("fault", ["wrong_transaction", "wrong_unit", "truncate"])
async def test_a_tcp_answer_framed_for_another_request_is_never_a_value(
    bridge_factory: BridgeFactory, fault: str
) -> None:
    sim = ModbusSimulator({1: boiler_state()})
    async with ModbusTcpServer(sim) as server:
        running = await tcp_bridge(bridge_factory, server)
        device = running.bridge.devices["boiler"]
        setattr(server, fault, True)
        sim.units[1].set_value("holding", 0, "float32", 99.5)
        await eventually(lambda: device.status == "offline")
        assert set(published(running, "temperature")) == {21.5}
        setattr(server, fault, False)
        await eventually(lambda: running.bridge.store.latest("boiler", "temperature").value == 99.5)
        assert device.status == "online"


async def test_late_replies_are_dropped_and_never_taken_for_the_next_answer(
    bridge_factory: BridgeFactory,
) -> None:
    sim = ModbusSimulator({1: boiler_state()})
    async with ModbusTcpServer(sim) as server:
        running = await tcp_bridge(bridge_factory, server, timeout=0.05)
        sim.delay = 0.08  # every answer arrives after its request timed out
        await eventually(lambda: running.bridge.devices["boiler"].status == "offline")
        sim.delay = 0.0
        sim.units[1].set_value("holding", 0, "float32", 33.0)
        await eventually(lambda: running.bridge.store.latest("boiler", "temperature").value == 33.0)
        # every value published is the answer to its own request: the pressure stays put
        assert set(published(running, "pressure")) == {1.52}


async def test_a_busy_device_is_degraded_and_its_other_blocks_still_read(
    bridge_factory: BridgeFactory,
) -> None:
    sim = ModbusSimulator({1: boiler_state()})
    async with ModbusTcpServer(sim) as server:
        running = await tcp_bridge(bridge_factory, server)
        sim.exception_for("input", 0, 100, 6)  # server device busy
        await eventually(lambda: running.bridge.devices["boiler"].status == "degraded")
        pressure = running.bridge.store.latest("boiler", "pressure")
        assert pressure.quality == "bad"
        assert "busy" in (pressure.error or "")
        assert running.bridge.store.latest("boiler", "temperature").quality == "good"
        sim.exceptions.clear()
        await eventually(lambda: running.bridge.devices["boiler"].status == "online")


async def test_a_device_that_resets_after_each_reply_is_still_read(
    bridge_factory: BridgeFactory,
) -> None:
    sim = ModbusSimulator({1: boiler_state()})
    async with ModbusTcpServer(sim) as server:
        server.reset_after_reply = True
        # one request per poll: each poll connects anew, is answered, and is reset
        running, _ = await bridge_factory(
            [tcp_device("boiler", server.port, points=BOILER_POINTS[:1])]
        )
        sim.units[1].set_value("holding", 0, "float32", 44.0)
        await eventually(lambda: running.bridge.store.latest("boiler", "temperature").value == 44.0)
        sim.units[1].set_value("holding", 0, "float32", 45.0)
        await eventually(lambda: running.bridge.store.latest("boiler", "temperature").value == 45.0)
        assert set(published(running, "temperature")) <= {44.0, 45.0}


async def test_a_half_open_connection_is_replaced(bridge_factory: BridgeFactory) -> None:
    # A peer that keeps the connection and never answers on it: a half-open connection.
    sim = ModbusSimulator({1: boiler_state()})
    async with ModbusTcpServer(sim) as server:
        running = await tcp_bridge(bridge_factory, server, timeout=0.05)
        assert server.accepted == 1
        sim.silent = True
        # after three timeouts on it the bridge gives the connection up and opens another
        await eventually(lambda: server.accepted >= 2)
        assert running.bridge.devices["boiler"].status == "offline"
        sim.silent = False
        await eventually(lambda: running.bridge.devices["boiler"].status == "online")


async def test_a_flapping_endpoint_costs_only_its_own_device(
    bridge_factory: BridgeFactory,
) -> None:
    steady_sim = ModbusSimulator({1: boiler_state()})
    flapping_sim = ModbusSimulator({1: boiler_state()})
    async with ModbusTcpServer(steady_sim) as steady, ModbusTcpServer(flapping_sim) as flapping:
        running, _ = await bridge_factory(
            [tcp_device("steady", steady.port), tcp_device("flapping", flapping.port)]
        )
        devices = running.bridge.devices
        await eventually(lambda: devices["steady"].status == devices["flapping"].status == "online")
        failures = devices["steady"].poll_failures

        def flapping_reads(expected: float) -> bool:
            return running.bridge.store.latest("flapping", "temperature").value == expected

        for value in (50.0, 51.0, 52.0, 53.0):
            flapping_sim.drop_connections()
            flapping_sim.units[1].set_value("holding", 0, "float32", value)
            await eventually(partial(flapping_reads, value))
        assert devices["steady"].poll_failures == failures
        assert devices["steady"].status == "online"


def line_device(path: str, fmt: str) -> dict[str, Any]:
    parse: dict[str, Any] = (
        {"json": True} if fmt == "json" else {"csv": ["weight", "temperature", "stable"]}
    )
    return {
        "id": "scale", "driver": "serial-line", "connection": {"port": path},
        "command": "SI\r\n", "parse": parse, "interval": 0.05, "timeout": 0.2,
        "backoff_max": 0.2, "max_line": 1024,
        "points": [{"id": "weight"}, {"id": "stable", "type": "bool"}],
    }  # fmt: skip


# ------------------------------------------------------------------- line instruments


@pytest.mark.parametrize("fmt", ["json", "csv"])
async def test_a_number_beyond_float_range_is_a_bad_reading_and_the_device_stays_online(
    bridge_factory: BridgeFactory, fmt: str
) -> None:
    instrument = LineInstrument(format=fmt)  # type: ignore[arg-type]
    async with instrument:
        running, _ = await bridge_factory([line_device(instrument.path, fmt)])
        device = running.bridge.devices["scale"]
        await eventually(lambda: device.status == "online")
        instrument.values["weight"] = 10**400
        await eventually(lambda: running.bridge.store.latest("scale", "weight").quality == "bad")
        reading = running.bridge.store.latest("scale", "weight")
        assert "float" in (reading.error or "") or "finite" in (reading.error or "")
        assert len(reading.error or "") < 200
        assert device.status == "degraded"
        assert running.bridge.store.latest("scale", "stable").quality == "good"
        instrument.values["weight"] = 12.5
        await eventually(lambda: running.bridge.store.latest("scale", "weight").value == 12.5)
        assert device.status == "online"
