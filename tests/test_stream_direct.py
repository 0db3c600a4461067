"""Frames written straight to idle stream clients and queued for busy ones: a client sees
one ordered stream either way (README, "The WebSocket stream")."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.http_websocket import WebSocketWriter
from conftest import BridgeFactory, eventually, get_json, tcp_device

from bridge.hub import Subscriber
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
        pongs = 0
        frames: list[Frame] = []
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


async def test_clients_that_read_stall_or_filter_side_by_side_each_get_their_readings_once(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    """Subscribers that take everything are written to in one pass; one of them stalling,
    catching up, or choosing a filter moves it out of that pass and back: no reading is
    lost or sent twice, to it or to the others."""
    running, session = await wave_bridge(simulator, bridge_factory, 120, 0.002)
    hub = running.bridge.hub
    connections: list[aiohttp.ClientWebSocketResponse] = []
    subscribers: list[Subscriber] = []

    def joined_since(known: set[Subscriber]) -> bool:
        return len(hub.subscribers) > len(known)

    for query in ("", "", "", "", "?point=wave/flow_007"):
        known = set(hub.subscribers)
        connections.append(await session.ws_connect(f"api/v1/stream{query}", max_msg_size=0))
        await eventually(partial(joined_since, known), within=10)
        (subscriber,) = hub.subscribers - known
        subscribers.append(subscriber)
    first = connections[0]
    received: dict[int, list[Frame]] = {i: [] for i in range(5)}

    async def read(i: int) -> None:
        async for message in connections[i]:
            received[i].append(json.loads(message.data))

    def snapshots(i: int) -> int:
        return sum(f["type"] == "snapshot" for f in received[i])

    def narrowed_readings() -> list[str]:
        """The points of the first reader's readings between its 2nd and 3rd snapshot."""
        marks = [i for i, f in enumerate(received[0]) if f["type"] == "snapshot"] + [None]
        second = marks[1]
        assert second is not None
        return [
            r["point"]
            for f in received[0][second + 1 : marks[2]]
            if f["type"] == "readings"
            for r in f["readings"]
        ]

    tasks = [asyncio.create_task(read(i)) for i in (0, 1, 2, 4)]
    try:
        await eventually(lambda: subscribers[3].queue.qsize() > 0, within=10)
        tasks.append(asyncio.create_task(read(3)))  # the staller catches up
        await eventually(lambda: all(s.queue.empty() for s in subscribers), within=10)
        # the readers that take everything, the staller among them, are in the one pass;
        # the narrowed one is not
        await eventually(
            lambda: (
                [s.direct_socket() is not None for s in subscribers]
                == [True, True, True, True, False]
            ),
            within=10,
        )
        # the first reader turns to one point, and back to everything
        await first.send_json({"op": "subscribe", "points": ["wave/flow_003"]})
        await eventually(lambda: snapshots(0) == 2, within=10)
        await eventually(lambda: len(narrowed_readings()) > 0, within=10)
        await first.send_json({"op": "subscribe"})
        await eventually(lambda: snapshots(0) == 3, within=10)
        caught_up = (await get_json(session, "api/v1/readings?device=wave"))["seq"]
        await eventually(
            lambda: all(any(s > caught_up for s in seqs(f)) for f in received.values()), 10
        )
    finally:
        for task in tasks:
            task.cancel()
        for ws in connections:
            await ws.close()
    for i in (1, 2, 3):
        got = seqs(received[i])
        assert got == list(range(got[0], got[-1] + 1)), i
    narrowed = [r for f in received[4] if f["type"] == "readings" for r in f["readings"]]
    assert {r["point"] for r in narrowed} == {"flow_007"}
    assert [r["seq"] for r in narrowed] == sorted({r["seq"] for r in narrowed})
    switched = [r["seq"] for f in received[0] if f["type"] == "readings" for r in f["readings"]]
    assert switched == sorted(set(switched))  # in order, none twice, across the switches
    assert set(narrowed_readings()) == {"flow_003"}
    assert hub.overflows == 0


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param(b"\x88\x82\0\0\0\0\x03\xe8", id="the-client-closes"),
        # reserved bits set with no extension: a protocol error, answered with a close
        pytest.param(b"\xa1\x80\0\0\0\0", id="a-protocol-error"),
    ],
)
async def test_nothing_follows_the_close_frame_the_bridge_sends_mid_stream(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    ending: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiohttp answers a client's close, or a protocol error, with a close frame of its
    own while frames stream at the client: by then the hub no longer writes to the
    connection directly, and the close frame is the last thing on the wire."""
    running, _ = await wave_bridge(simulator, bridge_factory, 50, 0.001)
    hub = running.bridge.hub
    writing_on: list[bool] = []  # at each close frame: would the hub still write directly?
    close_frame = WebSocketWriter.close

    async def watched(self: WebSocketWriter, code: int = 1000, message: bytes | str = b"") -> None:
        writing_on.extend(s.direct_socket() is not None for s in hub.subscribers)
        await close_frame(self, code, message)

    monkeypatch.setattr(WebSocketWriter, "close", watched)
    host, port = running.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET /api/v1/stream HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101")
    stream = b""
    while stream.count(b'"readings"') < 50:
        stream += await asyncio.wait_for(reader.read(65536), 10)
    writer.write(ending)  # masked with a zero key
    while chunk := await asyncio.wait_for(reader.read(65536), 10):
        stream += chunk
    writer.close()
    opcodes, at = [], 0
    while at < len(stream):
        length, head_size = stream[at + 1] & 0x7F, 2
        if length == 126:
            length, head_size = int.from_bytes(stream[at + 2 : at + 4]), 4
        elif length == 127:
            length, head_size = int.from_bytes(stream[at + 2 : at + 10]), 10
        opcodes.append(stream[at] & 0x0F)
        at += head_size + length
    assert at == len(stream)  # whole frames only
    assert opcodes.count(0x8) == 1
    assert opcodes[-1] == 0x8
    assert writing_on == [False]
