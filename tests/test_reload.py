"""Reloading the device file into a running bridge: a difference applied without dropping
a stream subscriber, losing or repeating a reading of an untouched device; a bad file
refused whole; SIGHUP on ``device-bridge run``."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import WSMsgType
from conftest import eventually

from bridge.config import load_config, parse_config
from bridge.reload import reload
from bridge.server import RunningServer, start_server
from bridge.store import Store
from simulators.modbus import ModbusDeviceState, ModbusSimulator
from simulators.modbus.tcp import ModbusTcpServer
from simulators.waveforms import Counter

TOKEN = "reload-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def device(device_id: str, port: int, unit: int, points: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": device_id, "driver": "modbus-tcp", "unit": unit,
            "connection": {"host": "127.0.0.1", "port": port},
            "interval": 0.02, "timeout": 0.2, "backoff_max": 0.2, "points": points}  # fmt: skip


COUNT = [{"id": "count", "table": "holding", "address": 0}]


def write_file(path: Path, devices: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump({"server": {"port": 0, "write_token": TOKEN},
                                    "devices": devices}))  # fmt: skip


@pytest.fixture
async def two_endpoints() -> AsyncIterator[tuple[int, int]]:
    """Two Modbus TCP simulators (two links); on each, units 1..3 count up fast."""
    sims = [ModbusSimulator({u: ModbusDeviceState() for u in (1, 2, 3)}) for _ in range(2)]
    for sim in sims:
        for unit in (1, 2, 3):
            sim.attach(unit, "holding", 0, "uint16", Counter(increment=500))
    async with ModbusTcpServer(sims[0]) as first, ModbusTcpServer(sims[1]) as second:
        yield first.port, second.port


@pytest.fixture
async def running(
    two_endpoints: tuple[int, int], tmp_path: Path
) -> AsyncIterator[tuple[RunningServer, aiohttp.ClientSession, Path]]:
    steady_port, other_port = two_endpoints
    path = tmp_path / "devices.yaml"
    write_file(path, [device("steady", steady_port, 1, COUNT),
                      device("edited", other_port, 1, COUNT),
                      device("gone", other_port, 2, COUNT)])  # fmt: skip
    server = await start_server(load_config(path))
    session = aiohttp.ClientSession(base_url=server.url + "/")
    try:
        yield server, session, path
    finally:
        await session.close()
        await server.close()


def collecting(
    ws: aiohttp.ClientWebSocketResponse, frames: list[dict[str, Any]]
) -> asyncio.Task[None]:
    """A task appending every JSON frame the WebSocket receives to ``frames``, until it closes."""

    async def collect() -> None:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                frames.append(json.loads(message.data))

    return asyncio.create_task(collect())


async def reload_request(session: aiohttp.ClientSession) -> tuple[int, Any]:
    async with session.post("api/v1/reload", headers=AUTH) as response:
        return response.status, await response.json(content_type=None)


async def test_a_reload_keeps_subscribers_and_untouched_devices_lose_and_repeat_nothing(
    running: tuple[RunningServer, aiohttp.ClientSession, Path], two_endpoints: tuple[int, int]
) -> None:
    server, session, path = running
    bridge = server.bridge
    steady_poller = bridge._poller_of["steady"]
    steady_runtime = bridge.devices["steady"]
    ws = await session.ws_connect("api/v1/stream")
    frames: list[dict[str, Any]] = []

    collector = collecting(ws, frames)

    def steady_seqs() -> list[int]:
        return [r["seq"] for f in frames if f["type"] == "readings"
                for r in f["readings"] if r["device"] == "steady"]  # fmt: skip

    await eventually(lambda: len(steady_seqs()) >= 5)
    polls_before = steady_runtime.polls
    _, other_port = two_endpoints
    write_file(path, [device("steady", two_endpoints[0], 1, COUNT),
                      device("edited", other_port, 1, [*COUNT, {"id": "more", "table": "holding",
                                                                "address": 1}]),
                      device("added", other_port, 3, COUNT)])  # fmt: skip
    status, body = await reload_request(session)
    assert status == 200, body
    assert body == {"reloaded": True, "unchanged": ["steady"], "changed": ["edited"],
                    "added": ["added"], "removed": ["gone"], "restart_needed": []}  # fmt: skip
    reloaded_at = len(steady_seqs())

    def devices_in_frames() -> set[str]:
        return {r["device"] for f in frames if f["type"] == "readings" for r in f["readings"]}

    await eventually(
        lambda: "added" in devices_in_frames() and len(steady_seqs()) > reloaded_at + 5
    )
    assert not ws.closed
    # the untouched device: the same link and runtime, polled on, nothing lost or repeated
    assert bridge._poller_of["steady"] is steady_poller
    assert bridge.devices["steady"] is steady_runtime
    assert steady_runtime.polls > polls_before
    seqs = steady_seqs()
    assert seqs == sorted(set(seqs))
    kept = [r.seq for r in bridge.store.history("steady", "count") if seqs[0] <= r.seq <= seqs[-1]]
    assert kept == seqs
    # the removed device's subscribers are told
    assert {"type": "status", "device": "gone", "status": "removed", "ts": None} in frames
    # the same boot: resume contracts hold
    hello = frames[0]
    async with session.get("api/v1/readings") as response:
        assert (await response.json())["boot"] == hello["boot"]
    async with session.get("api/v1/devices") as response:
        listed = [d["id"] for d in (await response.json())["devices"]]
    assert listed == ["steady", "edited", "added"]
    await ws.close()
    await collector


async def test_a_bad_file_changes_nothing_and_is_answered_with_every_error(
    running: tuple[RunningServer, aiohttp.ClientSession, Path],
) -> None:
    server, session, path = running
    bridge = server.bridge
    config, pollers = bridge.config, list(bridge.pollers)
    await eventually(lambda: bridge.store.seq > 3)
    path.write_text(textwrap.dedent("""\
        devices:
          - {id: steady, driver: modbus-tcp, connection: {host: 127.0.0.1}, points: [{id: x, table: coil, address: 0}]}
          - {id: steady, driver: modbus-tcp, connection: {host: 127.0.0.1}, points: [{id: x, table: holding, address: 0, type: int17}]}
        """))  # fmt: skip
    async with session.post("api/v1/reload", headers=AUTH) as response:
        assert response.status == 422
        assert response.content_type == "application/problem+json"
        problem = await response.json(content_type=None)
    assert problem["detail"] == f"{path} has errors: nothing was changed"
    assert any("devices[1].id (line 3): 'steady' is used by devices[0] too" in e
               for e in problem["errors"])  # fmt: skip
    assert any("devices[1].points[0].type (line 3)" in e for e in problem["errors"])
    assert bridge.config is config
    assert bridge.pollers == pollers
    assert [d for d in bridge.devices] == ["steady", "edited", "gone"]
    seq = bridge.store.seq
    await eventually(lambda: bridge.store.seq > seq)  # still polling
    async with session.post("api/v1/reload") as response:
        assert response.status == 401  # a write token is needed


async def test_store_keeps_points_defined_as_before() -> None:
    first = parse_config({"devices": [device("a", 1, 1, COUNT), device("b", 1, 2, COUNT)]})
    store = Store(first.devices, 10)
    store.apply_poll("a", {"count": 5}, 1.0)
    store.apply_poll("b", {"count": 6}, 1.0)
    second = parse_config({"devices": [
        device("a", 1, 1, [*COUNT, {"id": "new", "table": "holding", "address": 1}]),
        device("c", 1, 3, COUNT)]})  # fmt: skip
    store.set_devices(second.devices, 10)
    assert store.latest("a", "count").value == 5
    assert store.latest("a", "count").seq == 1
    assert store.latest("a", "new").value is None
    assert not store.has("b")
    assert store.has("c", "count")
    assert store.seq == 2


async def test_sighup_reloads_a_running_bridge(
    two_endpoints: tuple[int, int], tmp_path: Path
) -> None:
    steady_port, other_port = two_endpoints
    path = tmp_path / "devices.yaml"
    write_file(path, [device("steady", steady_port, 1, COUNT)])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "run", "-c", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    errors: list[str] = []

    async def read_log(stream: asyncio.StreamReader) -> None:
        async for line in stream:
            errors.append(line.decode())

    logger = asyncio.create_task(read_log(process.stderr))
    try:
        await asyncio.wait_for(process.stdout.readline(), 20)
        url = (await asyncio.wait_for(process.stdout.readline(), 5)).decode().split()[1]
        base = url.removesuffix("/api/v1/readings")
        async with aiohttp.ClientSession() as session:

            async def devices_are(expected: list[str]) -> bool:
                async with session.get(f"{base}/api/v1/devices") as response:
                    return [d["id"] for d in (await response.json())["devices"]] == expected

            assert await devices_are(["steady"])
            write_file(path, [device("steady", steady_port, 1, COUNT),
                              device("added", other_port, 2, COUNT)])  # fmt: skip
            process.send_signal(signal.SIGHUP)
            await eventually(lambda: devices_are(["steady", "added"]))
            path.write_text("devices: [{id: broken}]\n")
            process.send_signal(signal.SIGHUP)
            await eventually(lambda: any("reload refused" in line for line in errors))
            assert any("devices[0].driver" in line for line in errors)
            assert await devices_are(["steady", "added"])
        assert process.returncode is None
    finally:
        process.terminate()
        await process.wait()
        await logger
    assert process.returncode == 0


async def test_a_reload_tells_north_which_devices_went(
    broker: Any, two_endpoints: tuple[int, int], tmp_path: Path
) -> None:
    from mqtt_broker import Consumer

    steady_port, other_port = two_endpoints
    path = tmp_path / "devices.yaml"
    mqtt = {"mqtt_url": broker.url, "mqtt_topic": "site/box", "mqtt_outbox": str(tmp_path / "o.db")}

    def write(devices: list[dict[str, Any]]) -> None:
        path.write_text(yaml.safe_dump({"server": {"port": 0, **mqtt}, "devices": devices}))

    write([device("steady", steady_port, 1, COUNT), device("gone", other_port, 2, COUNT)])
    consumer = Consumer(broker, "site/#")
    server = await start_server(load_config(path))
    try:
        await eventually(lambda: consumer.on("site/box/gone/count"))
        write([device("steady", steady_port, 1, COUNT)])
        result = await reload(server.bridge, str(path))
        assert result.removed == ["gone"]
        # its retained latest value is cleared; the steady device goes on publishing
        await eventually(lambda: consumer.on("site/box/gone/count")[-1] == b"")
        before = len(consumer.on("site/box/steady/readings"))
        await eventually(lambda: len(consumer.on("site/box/steady/readings")) > before)
    finally:
        await server.close()
        consumer.close()


async def test_an_open_traffic_view_captures_the_links_a_reload_adds_or_redefines(
    running: tuple[RunningServer, aiohttp.ClientSession, Path], two_endpoints: tuple[int, int]
) -> None:
    server, session, path = running
    steady_port, other_port = two_endpoints
    other = f"tcp://127.0.0.1:{other_port}"
    ws = await session.ws_connect("api/v1/traffic")
    other_tap = server.bridge.traffic.taps[other]
    exchanges: list[dict[str, Any]] = []

    collector = collecting(ws, exchanges)
    await eventually(lambda: any(e.get("device") == "edited" for e in exchanges))
    assert exchanges[0]["links"] == [f"tcp://127.0.0.1:{steady_port}", other]
    before = {e["request"] for e in exchanges if e.get("device") == "edited"}
    sim = ModbusSimulator({1: ModbusDeviceState()})
    sim.attach(1, "holding", 0, "uint16", Counter(increment=500))
    async with ModbusTcpServer(sim) as third:
        fresh = f"tcp://127.0.0.1:{third.port}"
        write_file(path, [device("steady", steady_port, 1, COUNT),
                          device("edited", other_port, 1, [*COUNT, {"id": "more",
                                 "table": "holding", "address": 1}]),
                          device("fresh", third.port, 1, COUNT)])  # fmt: skip
        status, body = await reload_request(session)
        assert status == 200, body
        assert (body["added"], body["changed"]) == (["fresh"], ["edited"])
        seen = len(exchanges)

        def captured_after_reload(link: str, device_id: str) -> list[dict[str, Any]]:
            return [e for e in exchanges[seen:] if e.get("type") == "exchange"
                    and e["link"] == link and e["device"] == device_id]  # fmt: skip

        # the added link and the redefined one (a new link object under the same key),
        # both in the view that was open before the reload
        await eventually(lambda: captured_after_reload(fresh, "fresh"))
        await eventually(
            lambda: any(e["request"] not in before for e in captured_after_reload(other, "edited"))
        )
        await ws.close()
        await collector
    # the redefined link kept its key's ring; a new view names the added link
    assert server.bridge.traffic.taps[other] is other_tap
    async with session.ws_connect("api/v1/traffic") as second:
        hello = await second.receive_json()
        assert hello["links"] == [f"tcp://127.0.0.1:{steady_port}", other, fresh]
