"""Stream clients that stop reading (a full TCP window), over raw sockets: they are let go
within a bounded time, their slot is free at once, and the stall is counted."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from typing import Any

import aiohttp
from conftest import BridgeFactory, eventually, tcp_device
from yarl import URL

from bridge.api.stream import CLOSE_TIMEOUT
from simulators.modbus import ModbusSimulator
from simulators.waveforms import Sine


async def stalled_stream_client(url: str) -> socket.socket:
    """A WebSocket client over a raw socket with a tiny receive buffer that never reads."""
    split = URL(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (split.host, split.port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {split.path.rstrip('/')}/api/v1/stream HTTP/1.1\r\nHost: {split.host}:{split.port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock  # and never read again


async def _read_until_closed(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for _ in ws:
        pass


async def metric(session: aiohttp.ClientSession, name: str) -> float:
    async with session.get("metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def test_a_client_that_stops_reading_is_let_go_and_its_slot_freed_at_once(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    sim.attach(1, "holding", 100, "float32", Sine(amplitude=50.0, period=0.3, offset=50.0))
    points: list[dict[str, Any]] = [
        {"id": f"flow_{i:03d}", "table": "holding", "address": 100, "type": "float32"}
        | ({"view_of": "flow_000"} if i else {})
        for i in range(240)
    ]
    running, session = await bridge_factory(
        [tcp_device("wave", port, points=points, interval=0.001)],
        subscriber_queue=2,
        max_subscribers=1,
    )
    hub = running.bridge.hub
    stalled = await stalled_stream_client(running.url)
    try:
        await eventually(lambda: hub.overflows == 1, within=10)
        # the slot is free as soon as it overflowed: another client gets in at once
        assert not hub.subscribers
        async with session.ws_connect("api/v1/stream?device=wave") as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello"
            # the new client keeps up: it reads every frame while the old one is let go
            reader = asyncio.create_task(_read_until_closed(ws))
            # the close handshake the stalled client never takes ends in an abort, counted
            await eventually(
                lambda: metric(session, "device_bridge_stream_stalls_total"),
                within=CLOSE_TIMEOUT + 5,
            )
            server = running.runner.server
            assert server is not None
            stalled_end = stalled.getsockname()
            # the stalled client's connection is gone from the server
            await eventually(
                lambda: all(
                    c.transport is None or c.transport.get_extra_info("peername") != stalled_end
                    for c in server.connections
                ),
                within=5,
            )
            reader.cancel()
        # and the connection itself ends: the stalled client, reading at last, comes to
        # its end (the bridge lets go of every descriptor of it)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(5):
            with contextlib.suppress(ConnectionResetError):
                while await loop.sock_recv(stalled, 65536):
                    pass
    finally:
        stalled.close()
