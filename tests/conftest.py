"""Shared fixtures: simulators on ephemeral ports and bridges serving them on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import uvloop

from bridge.config import parse_config
from bridge.server import RunningServer, start_server
from simulators.modbus import ModbusDeviceState, ModbusSimulator
from simulators.modbus.tcp import ModbusTcpServer

#: test modules run on uvloop (the service's loop: bridge/event_loop.py) as well as on
#: asyncio's: how a stream connection is written and ended differs between the two
ON_BOTH_LOOPS = frozenset(
    {
        "test_stream.py",
        "test_stream_direct.py",
        "test_stream_endings.py",
        "test_stream_keepalive.py",
        "test_stream_stalls.py",
        "test_tls.py",
    }
)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if item.path.name in ON_BOTH_LOOPS:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


async def eventually(
    condition: Callable[[], Any], within: float = 5.0, interval: float = 0.01
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)


async def get_json(session: aiohttp.ClientSession, path: str, **kwargs: Any) -> Any:
    """The JSON body of a GET under the session's base URL, checked to be a 200 JSON answer."""
    async with session.get(path, **kwargs) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "application/json"
        return await response.json()


async def all_good(
    session: aiohttp.ClientSession, device: str | None = None, **kwargs: Any
) -> bool:
    """Whether every latest reading (of one device, if named) has quality good."""
    path = f"api/v1/devices/{device}/readings" if device else "api/v1/readings"
    body = await get_json(session, path, **kwargs)
    return all(r["quality"] == "good" for r in body["readings"])


def boiler_state() -> ModbusDeviceState:
    """A unit holding the demo boiler's example values (README, "The API")."""
    state = ModbusDeviceState("boiler")
    state.set_value("holding", 0, "float32", 21.5)
    state.set_value("input", 10, "int16", 152)
    state.set_value("coil", 0, "bool", True)
    state.set_value("holding", 20, "float32", 65.0, word_order="little")
    state.set_value("holding", 30, "uint16", 0b1000)
    state.set_value("holding", 40, "string", "BOILER-1", length=8)
    return state


BOILER_POINTS: list[dict[str, Any]] = [
    {"id": "temperature", "table": "holding", "address": 0, "type": "float32", "unit": "°C"},
    {"id": "pressure", "table": "input", "address": 10, "type": "int16", "scale": 0.01,
     "unit": "bar"},
    {"id": "pump_on", "table": "coil", "address": 0, "type": "bool", "writable": True},
    {"id": "setpoint", "table": "holding", "address": 20, "type": "float32",
     "word_order": "little", "writable": True, "min": 0, "max": 90},
    {"id": "alarm", "table": "holding", "address": 30, "type": "bool", "bit": 3},
    {"id": "model", "table": "holding", "address": 40, "type": "string", "length": 8},
]  # fmt: skip


def tcp_device(
    device_id: str,
    port: int,
    unit: int = 1,
    points: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A modbus-tcp device entry with fast test timings: polled every 50 ms, and a timeout
    long enough that a loaded machine's stall is not taken for a silent device (tests of
    timeouts give their own)."""
    entry: dict[str, Any] = {
        "id": device_id, "driver": "modbus-tcp",
        "connection": {"host": "127.0.0.1", "port": port}, "unit": unit,
        "interval": 0.05, "timeout": 0.5, "backoff_max": 0.2,
        "points": points if points is not None else BOILER_POINTS,
    }  # fmt: skip
    entry.update(extra)
    return entry


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[ModbusSimulator, int]]:
    """A Modbus TCP simulator with the boiler as unit 1, on an ephemeral port."""
    sim = ModbusSimulator({1: boiler_state()})
    async with ModbusTcpServer(sim) as server:
        yield sim, server.port


BridgeFactory = Callable[..., Awaitable[tuple[RunningServer, aiohttp.ClientSession]]]


@pytest.fixture
async def bridge_factory() -> AsyncIterator[BridgeFactory]:
    """Starts bridges on ephemeral ports; each comes with an HTTP session on its base URL."""
    started: list[tuple[RunningServer, aiohttp.ClientSession]] = []

    async def start(
        devices: list[dict[str, Any]], **server: Any
    ) -> tuple[RunningServer, aiohttp.ClientSession]:
        config = parse_config({"server": {"port": 0, **server}, "devices": devices})
        running = await start_server(config)
        session = aiohttp.ClientSession(base_url=running.url + "/")
        started.append((running, session))
        return running, session

    yield start
    for running, session in started:
        await session.close()
        await running.close()


@pytest.fixture
def broker(tmp_path: Any) -> Any:
    """A real Mosquitto broker on a free loopback port (see tests/mqtt_broker.py)."""
    from mqtt_broker import Broker

    running = Broker(tmp_path)
    running.start()
    yield running
    running.stop()
