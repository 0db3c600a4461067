"""Frames written straight to idle stream clients and queued for busy ones: a client sees
one ordered stream either way (README, "The WebSocket stream")."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from conftest import BridgeFactory, eventually, get_json, tcp_device

from bridge.server import RunningServer
from simulators.modbus import ModbusSimulator
from simulators.waveforms import Sine

Frame = dict[str, Any]


async def wave_bridge(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    count: int,
    interval: float,
    **server: Any,
) -> tuple[RunningServer, aiohttp.ClientSession]:
    """A bridge polling device ``wave``: ``count`` points over one register a sine moves,
    so every poll publishes them all."""
    sim, port = simulator
    sim.attach(1, "holding", 100, "float32", Sine(amplitude=50.0, period=0.3, offset=50.0))
    points = [
        {"id": f"flow_{i:03d}", "table": "holding", "address": 100, "type": "float32"}
        | ({"view_of": "flow_000"} if i else {})
        for i in range(count)
    ]
    return await bridge_factory(
        [tcp_device("wave", port, points=points, interval=interval)], **server
    )


def seqs(frames: list[Frame]) -> list[int]:
    return [r["seq"] for f in frames if f["type"] == "readings" for r in f["readings"]]


async def test_a_client_that_stalls_then_resumes_gets_every_reading_once_in_order(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    running, session = await wave_bridge(simulator, bridge_factory, 120, 0.002)
    hub = running.bridge.hub
    ws = await session.ws_connect("api/v1/stream", max_msg_size=0)
    (subscriber,) = hub.subscribers
    # not reading: its socket buffers fill and the bridge's frames back up into its queue
    await eventually(lambda: subscriber.queue.qsize() > 0, within=10)
    frames: list[Frame] = []

    async def read() -> None:
        async for message in ws:
            frames.append(json.loads(message.data))

    reading = asyncio.create_task(read())
    try:
        # it catches up; then frames published later reach it too
        await eventually(lambda: subscriber.queue.empty(), within=10)
        caught_up = (await get_json(session, "api/v1/readings?device=wave"))["seq"]
        await eventually(lambda: any(s > caught_up for s in seqs(frames)), within=10)
    finally:
        reading.cancel()
        await ws.close()
    assert [f["type"] for f in frames[:2]] == ["hello", "snapshot"]
    received = seqs(frames)
    assert received == list(range(received[0], received[-1] + 1))
    assert hub.overflows == 0


async def test_a_client_that_pings_while_frames_stream_gets_its_pongs_and_intact_frames(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, session = await wave_bridge(simulator, bridge_factory, 20, 0.001)
    async with session.ws_connect("api/v1/stream", autoping=False) as ws:
        pongs, frames = 0, []
        while pongs < 20 or len(seqs(frames)) < 400:
            await ws.ping(str(pongs).encode())
            while (message := await ws.receive(timeout=5)).type != WSMsgType.PONG:
                assert message.type == WSMsgType.TEXT, message
                frames.append(json.loads(message.data))
            assert message.data == str(pongs).encode()
            pongs += 1
    received = seqs(frames)
    assert received == list(range(received[0], received[-1] + 1))


async def test_with_compression_on_a_client_that_offers_it_gets_every_change(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, session = await wave_bridge(simulator, bridge_factory, 20, 0.005, stream_compress=True)
    async with session.ws_connect("api/v1/stream", compress=15) as ws:
        assert ws.compress == 15
        frames = [json.loads((await ws.receive(timeout=5)).data) for _ in range(30)]
    assert [f["type"] for f in frames[:2]] == ["hello", "snapshot"]
    received = seqs(frames)
    assert len(received) >= 20 * 20
    assert received == list(range(received[0], received[-1] + 1))
