"""How stream connections end when the bridge writes them itself, over raw sockets: a close
frame never falls inside a frame, a client gone mid-send is no error, and a client that
never reads is let go even before its first frames are through."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from functools import partial
from typing import Any

import pytest
from conftest import BridgeFactory, eventually, tcp_device
from test_stream_stalls import stalled_stream_client

from bridge.hub import Hub, Subscriber
from simulators.modbus import ModbusSimulator
from simulators.waveforms import Sine

#: TCP_INFO's first byte: the connection's state
ESTABLISHED = 1


def views(count: int) -> list[dict[str, Any]]:
    """``count`` points over one register: a snapshot of them is a big frame."""
    return [
        {"id": f"p{i:04d}", "table": "holding", "address": 0, "type": "float32"}
        | ({"view_of": "p0000"} if i else {})
        for i in range(count)
    ]


def masked(opcode: int, payload: bytes) -> bytes:
    """A client's frame, masked with a zero key."""
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def frames(stream: bytes) -> tuple[list[int], int]:
    """The opcodes of the whole frames in ``stream``, and the bytes left over."""
    opcodes, at = [], 0
    while at + 2 <= len(stream):
        length, head = stream[at + 1] & 0x7F, 2
        if length == 126:
            length, head = int.from_bytes(stream[at + 2 : at + 4]), 4
        elif length == 127:
            length, head = int.from_bytes(stream[at + 2 : at + 10]), 10
        if at + head + length > len(stream):
            break
        opcodes.append(stream[at] & 0x0F)
        at += head + length
    return opcodes, len(stream) - at


async def read_frames(sock: socket.socket, count: int) -> bytes:
    """Read until ``count`` whole frames have come: their bytes (and any after them)."""
    loop = asyncio.get_running_loop()
    stream = b""
    async with asyncio.timeout(10):
        while len(frames(stream)[0]) < count:
            stream += await loop.sock_recv(sock, 65536)
    return stream


async def read_to_end(sock: socket.socket, within: float = 10) -> bytes:
    loop = asyncio.get_running_loop()
    stream = b""
    async with asyncio.timeout(within):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await loop.sock_recv(sock, 65536):
                stream += chunk
    return stream


def state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def has_data(sock: socket.socket) -> bool:
    try:
        return len(sock.recv(1, socket.MSG_PEEK)) == 1
    except BlockingIOError:
        return False


async def joined(hub: Hub, known: set[Subscriber]) -> Subscriber:
    """The subscriber that joined the hub since ``known``."""
    await eventually(lambda: len(hub.subscribers - known) == 1, within=10)
    (subscriber,) = hub.subscribers - known
    return subscriber


def backed_up(subscriber: Subscriber) -> bool:
    return subscriber.pending > 0


def gone(hub: Hub, subscriber: Subscriber) -> bool:
    return subscriber not in hub.subscribers


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def test_a_close_frame_never_falls_inside_a_frame_the_client_has_only_part_of(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    """The client asks for a new snapshot and closes in the same packet: the snapshot
    the bridge answers with is bigger than the socket takes at once, and the close frame
    comes after all of it."""
    _, port = simulator
    running, _ = await bridge_factory([tcp_device("big", port, points=views(3000), interval=3600)])
    hub = running.bridge.hub
    await eventually(lambda: running.bridge.store.seq > 0, within=10)
    sock = await stalled_stream_client(running.url)
    first = await read_frames(sock, 2)  # hello, the snapshot
    subscriber = await joined(hub, set())
    await eventually(lambda: subscriber.direct_socket() is not None, within=10)
    sock.send(masked(0x1, b'{"op":"subscribe"}') + masked(0x8, b"\x03\xe8"))
    opcodes, left = frames(first + await read_to_end(sock))
    sock.close()
    assert left == 0  # whole frames only
    assert opcodes[:2] == [0x1, 0x1]  # hello, the snapshot
    assert opcodes[-1] == 0x8
    assert opcodes.count(0x1) == 3  # and the second snapshot, whole, before the close


async def test_a_client_gone_while_its_snapshot_is_sent_is_no_error_and_no_stall(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, port = simulator
    running, _ = await bridge_factory([tcp_device("big", port, points=views(4000), interval=3600)])
    hub = running.bridge.hub
    await eventually(lambda: running.bridge.store.seq > 0, within=10)
    sock = await stalled_stream_client(running.url)
    # the snapshot has begun to arrive, and is far bigger than the buffers: the bridge
    # is in the middle of sending it when the client resets
    await eventually(lambda: has_data(sock), within=10)
    assert hub.subscribers
    reset(sock)
    await eventually(lambda: not hub.subscribers, within=5)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert hub.stalls == 0


async def test_a_client_that_never_reads_its_snapshot_is_let_go_when_it_overflows(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    """Its queue fills while the bridge waits to send its first frames: it is closed, and
    the close that cannot finish is cut."""
    sim, port = simulator
    sim.attach(1, "holding", 0, "float32", Sine(amplitude=50.0, period=0.3, offset=50.0))
    running, _ = await bridge_factory(
        [tcp_device("big", port, points=views(3000), interval=0.02)], subscriber_queue=5
    )
    hub = running.bridge.hub
    await eventually(lambda: running.bridge.store.seq > 0, within=10)
    sock = await stalled_stream_client(running.url)
    try:
        await eventually(lambda: hub.overflows == 1, within=10)
        await eventually(lambda: not hub.subscribers, within=5)
        await eventually(lambda: state(sock) != ESTABLISHED, within=5)  # reset
        assert hub.stalls == 1
    finally:
        sock.close()


async def test_a_client_that_sends_a_bad_frame_and_resets_mid_frame_ends_cleanly(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    """A protocol error read just as the connection resets, while a frame to the client
    is half sent: the connection ends, and the bridge goes on serving others."""
    sim, port = simulator
    sim.attach(1, "holding", 0, "float32", Sine(amplitude=50.0, period=0.3, offset=50.0))
    running, session = await bridge_factory(
        [tcp_device("wave", port, points=views(200), interval=0.005)]
    )
    hub = running.bridge.hub
    for _ in range(3):
        known = set(hub.subscribers)
        sock = await stalled_stream_client(running.url)
        subscriber = await joined(hub, known)
        await eventually(partial(backed_up, subscriber), within=5)
        sock.send(masked(0x1, b"").replace(b"\x81", b"\xa1", 1))  # reserved bits set
        reset(sock)
        await eventually(partial(gone, hub, subscriber), within=10)
    async with session.get("healthz") as response:
        assert response.status == 200
