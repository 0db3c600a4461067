"""Polling Modbus TCP devices through real simulators: values, requests, failures, rates."""

from __future__ import annotations

import socket
import time
from typing import Any

from conftest import BridgeFactory, eventually, tcp_device

from simulators.modbus import ModbusDeviceState, ModbusSimulator
from simulators.modbus.tcp import ModbusTcpServer

#: fifteen points of every type at scattered addresses; holding 10..14 is unreadable, so the
#: two holding groups (0..7 and 15..31) are within max_gap of each other but cannot be read
#: in one request.
FIFTEEN: list[dict[str, Any]] = [
    {"id": "i16", "table": "holding", "address": 0, "type": "int16"},
    {"id": "u16", "table": "holding", "address": 1, "type": "uint16"},
    {"id": "i32", "table": "holding", "address": 2, "type": "int32"},
    {"id": "u32", "table": "holding", "address": 4, "type": "uint32"},
    {"id": "f32", "table": "holding", "address": 6, "type": "float32"},
    {"id": "i64", "table": "holding", "address": 15, "type": "int64"},
    {"id": "u64", "table": "holding", "address": 19, "type": "uint64"},
    {"id": "f64", "table": "holding", "address": 23, "type": "float64"},
    {"id": "flag", "table": "holding", "address": 27, "type": "bool", "bit": 5},
    {"id": "name", "table": "holding", "address": 28, "type": "string", "length": 4},
    {"id": "level", "table": "input", "address": 100, "type": "float32", "word_order": "little"},
    {"id": "temp", "table": "input", "address": 103, "type": "int16", "scale": 0.1,
     "offset": -40},
    {"id": "swapped", "table": "input", "address": 104, "type": "uint16", "byte_order": "little"},
    {"id": "valve", "table": "coil", "address": 5, "type": "bool"},
    {"id": "door", "table": "discrete", "address": 17, "type": "bool"},
]  # fmt: skip

EXPECTED = {
    "i16": -1234, "u16": 54321, "i32": -123456789, "u32": 3_000_000_000, "f32": 3.25,
    "i64": -9_000_000_000_000_000, "u64": 18_000_000_000_000_000_000, "f64": 2.718281828459045,
    "flag": True, "name": "PLC-7", "level": 12.5, "temp": 25.5, "swapped": 0x1234,
    "valve": True, "door": True,
}  # fmt: skip


def plc_state() -> ModbusDeviceState:
    state = ModbusDeviceState("plc")
    state.set_value("holding", 0, "int16", -1234)
    state.set_value("holding", 1, "uint16", 54321)
    state.set_value("holding", 2, "int32", -123456789)
    state.set_value("holding", 4, "uint32", 3_000_000_000)
    state.set_value("holding", 6, "float32", 3.25)
    state.set_value("holding", 15, "int64", -9_000_000_000_000_000)
    state.set_value("holding", 19, "uint64", 18_000_000_000_000_000_000)
    state.set_value("holding", 23, "float64", 2.718281828459045)
    state.set_registers("holding", 27, [1 << 5])
    state.set_value("holding", 28, "string", "PLC-7", length=4)
    state.set_value("input", 100, "float32", 12.5, word_order="little")
    state.set_value("input", 103, "int16", 655)
    state.set_value("input", 104, "uint16", 0x3412)
    state.set_value("coil", 5, "bool", True)
    state.set_value("discrete", 17, "bool", True)
    state.unreadable.append(("holding", 10, 14))
    return state


def free_port() -> int:
    """A port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def values(running: Any, device: str) -> dict[str, Any]:
    return {r.point: r.value for r in running.bridge.store.device_readings(device)}


async def test_fifteen_points_read_right_with_one_request_per_readable_block(
    bridge_factory: BridgeFactory,
) -> None:
    sim = ModbusSimulator({1: plc_state()})
    async with ModbusTcpServer(sim) as server:
        # A long interval: after the first poll, polls happen only when the test asks.
        device = tcp_device("plc", server.port, points=FIFTEEN, interval=60)
        running, _ = await bridge_factory([device])
        store = running.bridge.store
        await eventually(lambda: running.bridge.devices["plc"].answered >= 1)  # and published
        # Even the poll that learns where the hole is reads every value right.
        assert values(running, "plc") == EXPECTED
        assert all(r.quality == "good" for r in store.device_readings("plc"))
        assert running.bridge.devices["plc"].status == "online"

        for _ in range(3):
            sim.clear_requests()
            await running.bridge.poll_now("plc")
            sent = sorted((r.function, r.address, r.count) for r in sim.requests)
            assert sent == [(1, 5, 1), (2, 17, 1), (3, 0, 8), (3, 15, 17), (4, 100, 5)]
        assert values(running, "plc") == EXPECTED


async def test_one_unreadable_point_fails_alone_and_its_neighbours_still_read(
    bridge_factory: BridgeFactory,
) -> None:
    state = plc_state()
    state.unreadable.append(("holding", 4, 5))  # u32 itself
    sim = ModbusSimulator({1: state})
    async with ModbusTcpServer(sim) as server:
        running, _ = await bridge_factory(
            [tcp_device("plc", server.port, points=FIFTEEN, interval=60)]
        )
        await eventually(lambda: running.bridge.devices["plc"].answered >= 1)  # and published
        readings = {r.point: r for r in running.bridge.store.device_readings("plc")}
        assert readings["u32"].quality == "bad"
        assert "illegal data address" in (readings["u32"].error or "")
        assert {p: r.value for p, r in readings.items() if p != "u32"} == {
            k: v for k, v in EXPECTED.items() if k != "u32"
        }
        assert running.bridge.devices["plc"].status == "degraded"
        # Learning ends within a few polls; then the unreadable point is not asked for every
        # poll, and its neighbours are read in as few requests as the holes allow.
        sent: list[list[tuple[int, int]]] = []
        for _ in range(8):
            sim.clear_requests()
            await running.bridge.poll_now("plc")
            sent.append(sorted((r.address, r.count) for r in sim.requests if r.function == 3))
            assert running.bridge.store.latest("plc", "f32").value == 3.25
        assert sent[-1] == sent[-2] == [(0, 4), (6, 2), (15, 17)]


async def test_a_silent_device_goes_offline_with_stale_readings_and_recovers(
    bridge_factory: BridgeFactory, simulator: tuple[ModbusSimulator, int]
) -> None:
    sim, port = simulator
    running, _ = await bridge_factory([tcp_device("boiler", port)])
    bridge = running.bridge
    await eventually(lambda: bridge.devices["boiler"].status == "online")
    read_at = bridge.store.latest("boiler", "temperature").ts
    assert read_at is not None
    assert abs(read_at - time.time()) < 2

    sim.silent = True
    await eventually(lambda: bridge.devices["boiler"].status == "offline")
    reading = bridge.store.latest("boiler", "temperature")
    assert (reading.quality, reading.value) == ("stale", 21.5)
    assert "did not answer" in (reading.error or "")
    assert "did not answer" in (bridge.devices["boiler"].last_error or "")

    sim.silent = False
    sim.units[1].set_value("holding", 0, "float32", 22.5)
    await eventually(lambda: bridge.devices["boiler"].status == "online")
    await eventually(lambda: bridge.store.latest("boiler", "temperature").value == 22.5)
    assert bridge.store.latest("boiler", "temperature").quality == "good"


async def test_a_dropped_connection_is_reopened(
    bridge_factory: BridgeFactory, simulator: tuple[ModbusSimulator, int]
) -> None:
    sim, port = simulator
    running, _ = await bridge_factory([tcp_device("boiler", port)])
    bridge = running.bridge
    await eventually(lambda: bridge.devices["boiler"].status == "online")
    polls = bridge.devices["boiler"].polls
    sim.drop_connections()
    sim.units[1].set_value("holding", 0, "float32", 99.0)
    await eventually(lambda: bridge.store.latest("boiler", "temperature").value == 99.0)
    assert bridge.devices["boiler"].polls > polls
    assert bridge.devices["boiler"].status == "online"


async def test_an_endpoint_that_comes_up_late_is_connected_with_backoff(
    bridge_factory: BridgeFactory,
) -> None:
    port = free_port()
    running, _ = await bridge_factory([tcp_device("late", port)])
    bridge = running.bridge
    await eventually(lambda: bridge.devices["late"].status == "offline")
    assert "cannot connect" in (bridge.devices["late"].last_error or "")
    assert bridge.ready  # tried once: ready, even though offline
    sim = ModbusSimulator({1: plc_state()})
    server = ModbusTcpServer(sim)
    await server.start("127.0.0.1", port)
    async with server:
        await eventually(lambda: bridge.devices["late"].status in ("online", "degraded"))


async def test_a_live_device_keeps_its_rate_beside_dead_and_mute_devices(
    bridge_factory: BridgeFactory, simulator: tuple[ModbusSimulator, int]
) -> None:
    sim, port = simulator
    silent = ModbusSimulator({1: plc_state()})
    silent.silent = True
    async with ModbusTcpServer(silent) as silent_server:
        interval = 0.1
        # (the live device's own timeout is long: a stalled machine is not what is tested)
        live = tcp_device("live", port, interval=interval, timeout=0.5)
        # On the live device's own endpoint: a unit id that never answers.
        mute = tcp_device("mute", port, unit=7, interval=interval, timeout=0.04, backoff_max=0.1)
        # On their own links: an endpoint nobody listens on, and a device that never answers.
        dead = tcp_device("dead", free_port(), interval=interval, timeout=0.04)
        quiet = tcp_device("quiet", silent_server.port, interval=interval, timeout=0.04)
        running, _ = await bridge_factory([live, mute, dead, quiet])
        bridge = running.bridge
        await eventually(lambda: bridge.devices["live"].status == "online")
        await eventually(
            lambda: all(bridge.devices[d].status == "offline" for d in ("mute", "dead", "quiet"))
        )
        start_polls = bridge.devices["live"].polls
        started = time.monotonic()
        sim.clear_requests()
        await eventually(lambda: time.monotonic() - started > 1.5, within=3)
        elapsed = time.monotonic() - started
        polls = bridge.devices["live"].polls - start_polls
        expected = elapsed / interval
        assert polls >= 0.85 * expected, (polls, expected)
        # the mute unit was asked at most once per cycle: one timeout per cycle at most
        mute_requests = sum(1 for r in sim.requests if r.unit == 7)
        assert 1 <= mute_requests <= expected
        assert bridge.devices["live"].status == "online"
