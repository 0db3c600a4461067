"""The stream's own pings and the connections the bridge writes itself: a client that
answers stays, one that stops answering is cut, and clients that come and go leave
nothing behind (README, "The WebSocket stream")."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from conftest import BridgeFactory, eventually, tcp_device

import bridge.api.stream
from bridge.server import RunningServer
from simulators.modbus import ModbusSimulator
from simulators.waveforms import Sine

#: seconds between pings in these tests (30 s in the bridge)
HEARTBEAT = 0.3


@pytest.fixture
def quick_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge.api.stream, "HEARTBEAT", HEARTBEAT)


async def wave(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory, **server: Any
) -> tuple[RunningServer, aiohttp.ClientSession]:
    sim, port = simulator
    sim.attach(1, "holding", 100, "float32", Sine(amplitude=50.0, period=0.3, offset=50.0))
    points = [{"id": "flow", "table": "holding", "address": 100, "type": "float32"}]
    return await bridge_factory([tcp_device("wave", port, points=points, interval=0.01)], **server)


@pytest.mark.parametrize(
    "compress", [pytest.param(False, id="plain"), pytest.param(True, id="compressed")]
)
async def test_a_client_is_pinged_kept_while_it_answers_and_cut_once_it_stops(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    quick_heartbeat: None,
    compress: bool,
) -> None:
    """Plain connections get the bridge's pings in order with its frames; compressed ones
    (written through aiohttp) get them too."""
    _, session = await wave(simulator, bridge_factory, stream_compress=compress)
    seqs: list[int] = []
    pings = 0
    async with session.ws_connect(
        "api/v1/stream", autoping=False, compress=15 if compress else 0
    ) as ws:
        assert bool(ws.compress) == compress
        while pings < 3:  # answered: the stream goes on
            message = await ws.receive(timeout=5 * HEARTBEAT)
            if message.type is WSMsgType.PING:
                pings += 1
                await ws.pong(message.data)
            else:
                assert message.type is WSMsgType.TEXT, message
                frame = json.loads(message.data)
                seqs += [r["seq"] for r in frame.get("readings", []) if frame["type"] == "readings"]
        # no longer answered: the next ping is the last thing before the connection ends
        after_silence: list[WSMsgType] = []
        async with asyncio.timeout(5 * HEARTBEAT):
            async for message in ws:
                after_silence.append(message.type)
    assert after_silence.count(WSMsgType.PING) == 1
    assert ws.closed
    assert len(seqs) > 10
    assert seqs == list(range(seqs[0], seqs[-1] + 1))


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_stream_clients_that_come_and_go_leave_no_descriptors_behind(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    """The bridge holds a duplicate of each plain connection's socket: it lets go of it
    when the connection ends, with a close handshake or without."""
    running, session = await wave(simulator, bridge_factory, max_subscribers=50)
    async with session.ws_connect("api/v1/stream") as warm:  # the session's own pool
        await warm.receive_json(timeout=5)
    before = open_descriptors()
    leaving = aiohttp.ClientSession(base_url=running.url + "/")
    closing = [await session.ws_connect("api/v1/stream") for _ in range(10)]
    going = [await leaving.ws_connect("api/v1/stream") for _ in range(10)]
    for ws in closing + going:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
    assert open_descriptors() >= before + 20
    for ws in closing:
        await ws.close()
    await leaving.close()  # its connections just end: no close frames
    await eventually(lambda: open_descriptors() <= before, within=10)
