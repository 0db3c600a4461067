"""Modbus RTU buses on pseudo-terminals: shared bus, silent units, bad frames, unplugging."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BridgeFactory, eventually, tcp_device
from serial_asyncio_fast import open_serial_connection

from bridge.config import ConfigError, parse_config
from simulators.modbus import ModbusDeviceState, ModbusSimulator
from simulators.modbus.rtu import ModbusRtuServer
from simulators.modbus.rtu_frame import crc16

FLOW = [{"id": "flow", "table": "input", "address": 0, "type": "uint32", "scale": 0.001,
         "unit": "m3/h"},
        {"id": "total", "table": "holding", "address": 0, "type": "uint16"}]  # fmt: skip


def meter(flow_litres: int, total: int) -> ModbusDeviceState:
    state = ModbusDeviceState()
    state.set_value("input", 0, "uint32", flow_litres)
    state.set_value("holding", 0, "uint16", total)
    return state


def rtu_device(device_id: str, port: str, unit: int, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": device_id, "driver": "modbus-rtu", "unit": unit,
        "connection": {"port": port, "baudrate": 19200},
        "interval": 0.05, "timeout": 0.15, "backoff_max": 0.2, "points": FLOW,
    }  # fmt: skip
    entry.update(extra)
    return entry


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[tuple[ModbusSimulator, ModbusRtuServer]]:
    """Two flow meters, units 3 and 4, on one pty bus reachable at a stable path."""
    sim = ModbusSimulator({3: meter(12345, 7), 4: meter(8200, 9)})
    server = ModbusRtuServer(sim, baudrate=19200, link_dir=str(tmp_path), name="ttyUSB0")
    await server.start()
    try:
        yield sim, server
    finally:
        await server.stop()


def values(running: Any, device: str) -> dict[str, Any]:
    return {r.point: r.value for r in running.bridge.store.device_readings(device)}


async def test_two_units_on_one_bus_share_one_port(
    bridge_factory: BridgeFactory, bus: tuple[ModbusSimulator, ModbusRtuServer]
) -> None:
    _, server = bus
    running, _ = await bridge_factory(
        [rtu_device("flow-a", server.path, 3), rtu_device("flow-b", server.path, 4)]
    )
    assert len(running.bridge.pollers) == 1
    await eventually(lambda: values(running, "flow-b") == {"flow": 8.2, "total": 9})
    assert values(running, "flow-a") == {"flow": 12.345, "total": 7}
    assert {d.status for d in running.bridge.devices.values()} == {"online"}


def test_devices_on_one_port_must_agree_on_serial_settings() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"devices": [
                rtu_device("a", "/dev/ttyUSB9", 1),
                rtu_device("b", "/dev/ttyUSB9", 2, connection={"port": "/dev/ttyUSB9",
                                                                "baudrate": 9600}),
                rtu_device("c", "/dev/ttyUSB9", 1),
            ]}
        )  # fmt: skip
    text = caught.value.render()
    assert "serial settings differ (19200 8N1 and 9600 8N1)" in text
    assert "'a' and 'c' are both unit 1" in text


async def test_a_silent_unit_costs_the_bus_one_timeout_per_cycle_at_most(
    bridge_factory: BridgeFactory, bus: tuple[ModbusSimulator, ModbusRtuServer]
) -> None:
    sim, server = bus
    interval = 0.1
    live = rtu_device("flow-a", server.path, 3, interval=interval)
    silent = rtu_device("ghost", server.path, 9, interval=interval, timeout=0.04)
    running, _ = await bridge_factory([live, silent])
    bridge = running.bridge
    await eventually(lambda: bridge.devices["ghost"].status == "offline")
    await eventually(lambda: bridge.devices["flow-a"].status == "online")
    start_polls, started = bridge.devices["flow-a"].polls, time.monotonic()
    sim.clear_requests()
    await eventually(lambda: time.monotonic() - started > 1.2, within=3)
    cycles = (time.monotonic() - started) / interval
    assert bridge.devices["flow-a"].polls - start_polls >= 0.85 * cycles
    assert sum(1 for r in sim.requests if r.unit == 9) <= cycles


@pytest.mark.parametrize("fault", ["bad_crc", "wrong_unit", "truncate"])
async def test_a_bad_reply_is_never_a_value_and_the_device_recovers(
    bridge_factory: BridgeFactory, bus: tuple[ModbusSimulator, ModbusRtuServer], fault: str
) -> None:
    sim, server = bus
    running, _ = await bridge_factory([rtu_device("flow-a", server.path, 3)])
    bridge = running.bridge
    await eventually(lambda: bridge.devices["flow-a"].status == "online")
    published = bridge.store.seq
    sim.units[3].set_value("input", 0, "uint32", 99999)
    setattr(server, fault, True)
    await eventually(lambda: bridge.devices["flow-a"].status == "offline")
    reading = bridge.store.latest("flow-a", "flow")
    assert (reading.quality, reading.value) == ("stale", 12.345)
    # nothing from the bad frames was published as a value
    assert all(r.value != 99.999 for r in bridge.store.history("flow-a", "flow"))
    assert bridge.store.seq > published
    setattr(server, fault, False)
    await eventually(lambda: bridge.store.latest("flow-a", "flow").value == 99.999)
    assert bridge.devices["flow-a"].status == "online"


async def test_stray_bytes_before_a_reply_are_tolerated(
    bridge_factory: BridgeFactory, bus: tuple[ModbusSimulator, ModbusRtuServer]
) -> None:
    _, server = bus
    server.stray_bytes = b"\x00\xff\x03"
    running, _ = await bridge_factory([rtu_device("flow-a", server.path, 3)])
    bridge = running.bridge
    await eventually(lambda: bridge.devices["flow-a"].polls >= 5)
    assert bridge.devices["flow-a"].poll_failures == 0
    assert values(running, "flow-a") == {"flow": 12.345, "total": 7}


async def test_a_late_reply_is_never_taken_as_the_next_answer(
    bridge_factory: BridgeFactory, bus: tuple[ModbusSimulator, ModbusRtuServer]
) -> None:
    sim, server = bus
    # unit 3 answers after its timeout: its replies arrive while unit 4 is being asked
    running, _ = await bridge_factory([
        rtu_device("flow-a", server.path, 3, timeout=0.05, interval=0.03),
        rtu_device("flow-b", server.path, 4, timeout=0.2, interval=0.03),
    ])  # fmt: skip
    bridge = running.bridge
    await eventually(lambda: bridge.devices["flow-b"].status == "online")
    sim.delay = 0.08
    await eventually(lambda: bridge.devices["flow-a"].status == "offline")
    await eventually(lambda: bridge.devices["flow-b"].polls > 20)
    # every value flow-b ever published is its own
    assert {r.value for r in bridge.store.history("flow-b", "flow")} == {8.2}
    assert {r.value for r in bridge.store.history("flow-b", "total")} == {9}


async def test_unplugging_takes_the_bus_offline_and_replugging_brings_it_back(
    bridge_factory: BridgeFactory,
    bus: tuple[ModbusSimulator, ModbusRtuServer],
    simulator: tuple[ModbusSimulator, int],
) -> None:
    _, server = bus
    _, tcp_port = simulator
    running, http = await bridge_factory(
        [rtu_device("flow-a", server.path, 3), tcp_device("boiler", tcp_port)]
    )
    bridge = running.bridge
    await eventually(lambda: bridge.devices["flow-a"].status == "online")
    boiler_polls = bridge.devices["boiler"].polls
    server.unplug()
    await eventually(lambda: bridge.devices["flow-a"].status == "offline")
    assert bridge.store.latest("flow-a", "flow").quality == "stale"
    async with http.get("healthz") as response:
        assert response.status == 200
    # the other link did not notice
    await eventually(lambda: bridge.devices["boiler"].polls > boiler_polls + 5)
    assert bridge.devices["boiler"].status == "online"
    await server.replug()
    await eventually(lambda: bridge.devices["flow-a"].status == "online")
    assert bridge.store.latest("flow-a", "flow").quality == "good"


async def _serial_server(path: str) -> tuple[asyncio.Server, int]:
    """A TCP serial server (like a Moxa NPort) in front of the pty: bytes both ways."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port_reader, port_writer = await open_serial_connection(url=path, baudrate=19200)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(256):
                sink.write(data)
                await sink.drain()

        tasks = [asyncio.create_task(pump(reader, port_writer)),
                 asyncio.create_task(pump(port_reader, writer))]  # fmt: skip
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            port_writer.close()
            writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_socket_url_reaches_rtu_devices_behind_a_tcp_serial_server(
    bridge_factory: BridgeFactory, bus: tuple[ModbusSimulator, ModbusRtuServer]
) -> None:
    _, server = bus
    tcp_server, port = await _serial_server(server.path)
    async with tcp_server:
        url = f"socket://127.0.0.1:{port}"
        running, _ = await bridge_factory(
            [rtu_device("flow-a", url, 3), rtu_device("flow-b", url, 4)]
        )
        await eventually(lambda: values(running, "flow-b") == {"flow": 8.2, "total": 9})
        assert values(running, "flow-a") == {"flow": 12.345, "total": 7}
        await running.close()  # before the serial server goes away


async def test_a_reply_after_its_timeout_is_counted_and_shown_in_the_traffic_view(
    bridge_factory: BridgeFactory, bus: tuple[ModbusSimulator, ModbusRtuServer]
) -> None:
    sim, server = bus
    # the next request goes out 0.3 s after the last: long after each late reply came
    running, http = await bridge_factory(
        [rtu_device("flow-a", server.path, 3, timeout=0.05, interval=0.3, backoff_max=0.3)]
    )
    bridge = running.bridge
    await eventually(lambda: bridge.devices["flow-a"].status == "online")
    assert bridge.driver_counters("flow-a") == {"unrequested_bytes": 0, "other_unit_replies": 0}
    bridge.traffic.watch()
    (tap,) = bridge.traffic.taps.values()
    sim.delay = 0.1  # every answer comes about 50 ms after its request timed out
    await eventually(lambda: any(b"nothing asked for" in f for _, f in tap.ring))
    entry = next(json.loads(f) for _, f in tap.ring if b"nothing asked for" in f)
    late = bytes.fromhex(entry["received"])
    # the whole reply of unit 3 to the read it was too slow for: unit, function, CRC
    assert late[0] == 3
    assert late[1] in (3, 4)
    assert len(late) == 5 + late[2]
    assert crc16(late[:-2]) == int.from_bytes(late[-2:], "little")
    assert entry["device"] == ""
    assert entry["sent"] == ""
    assert "after its timeout" in entry["error"]
    # and it is counted with the device's stats, for whoever has no page open
    answer = await http.get("/api/v1/devices/flow-a")
    counted = (await answer.json())["stats"]["driver"]["unrequested_bytes"]
    assert counted >= len(late)
    sim.delay = 0.0
    await eventually(lambda: bridge.devices["flow-a"].status == "online")
    # never taken for an answer: the values are unit 3's own
    assert values(running, "flow-a") == {"flow": 12.345, "total": 7}
