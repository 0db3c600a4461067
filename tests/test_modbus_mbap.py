"""Modbus TCP framing against a scripted peer on loopback: what arrives is split, late or
not Modbus TCP at all, and only the frame that answers a request is taken as its reply."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from conftest import eventually

from drivers.base import DeviceTimeout, Exchange, LinkError
from drivers.modbus.config import ModbusTcpDevice
from drivers.modbus.mbap import HEADER, frame
from drivers.modbus.tcp import ModbusTcpLink

READ = bytes.fromhex("03 0000 0001")  # one holding register
ANSWER = bytes.fromhex("03 02 002a")  # 42

#: what the peer does with each request: (its transaction id, its unit, the writer)
Script = Callable[[int, int, asyncio.StreamWriter], Awaitable[None]]


def test_a_frame_is_the_header_then_the_pdu() -> None:
    assert frame(0x1234, 7, READ) == bytes.fromhex("1234 0000 0006 07") + READ
    assert HEADER.unpack(frame(1, 2, ANSWER)[:7]) == (1, 0, len(ANSWER) + 1, 2)


async def peer(script: Script) -> tuple[asyncio.Server, int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                transaction, _, length, unit = HEADER.unpack(await reader.readexactly(7))
                await reader.readexactly(length - 1)
                await script(transaction, unit, writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def open_link() -> AsyncIterator[Callable[[Script], Awaitable[ModbusTcpLink]]]:
    servers: list[asyncio.Server] = []
    links: list[ModbusTcpLink] = []

    async def start(script: Script) -> ModbusTcpLink:
        server, port = await peer(script)
        device = ModbusTcpDevice.model_validate(
            {"id": "d", "driver": "modbus-tcp", "timeout": 0.3,
             "connection": {"host": "127.0.0.1", "port": port},
             "points": [{"id": "p", "table": "holding", "address": 0}]}
        )  # fmt: skip
        link = ModbusTcpLink("127.0.0.1", port, [device])
        await link.open()
        servers.append(server)
        links.append(link)
        return link

    yield start
    for link in links:
        await link.close()
    for server in servers:
        server.close()


def the_device(link: ModbusTcpLink) -> ModbusTcpDevice:
    device = next(iter(link._plans.values())).device
    assert isinstance(device, ModbusTcpDevice)
    return device


async def test_a_reply_split_into_single_bytes_is_put_together(
    open_link: Callable[[Script], Awaitable[ModbusTcpLink]],
) -> None:
    async def byte_by_byte(transaction: int, unit: int, writer: asyncio.StreamWriter) -> None:
        for byte in frame(transaction, unit, ANSWER):
            writer.write(bytes([byte]))
            await writer.drain()

    link = await open_link(byte_by_byte)
    assert await link.read(the_device(link)) == {"p": 42}
    assert await link.read(the_device(link)) == {"p": 42}


async def test_a_reply_with_another_transaction_id_is_dropped_and_counted(
    open_link: Callable[[Script], Awaitable[ModbusTcpLink]],
) -> None:
    async def late_then_right(transaction: int, unit: int, writer: asyncio.StreamWriter) -> None:
        stale = frame((transaction - 1) & 0xFFFF, unit, bytes.fromhex("03 02 0063"))
        writer.write(stale + frame(transaction, unit, ANSWER))  # one segment, two frames

    link = await open_link(late_then_right)
    assert await link.read(the_device(link)) == {"p": 42}
    assert link.counters("d")["late_replies"] == 1


class Recorder:
    """A tap, as the traffic view attaches one: the exchanges it was given."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def record(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)


async def test_the_traffic_view_shows_a_late_reply_and_unframed_bytes_beside_the_answer(
    open_link: Callable[[Script], Awaitable[ModbusTcpLink]],
) -> None:
    requests = 0
    stale = bytes.fromhex("03 02 0063")
    not_modbus = b"+CME ERROR\r\n"

    async def script(transaction: int, unit: int, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        requests += 1
        if requests == 1:  # too slow: answered along with the next request
            return
        if requests == 2:
            writer.write(frame((transaction - 1) & 0xFFFF, unit, stale))
            await writer.drain()
            writer.write(frame(transaction, unit, ANSWER))
        else:  # a modem's line where a frame should be
            writer.write(not_modbus)

    link = await open_link(script)
    tap = link.tap = Recorder()
    with pytest.raises(DeviceTimeout):
        await link.read(the_device(link))
    assert await link.read(the_device(link)) == {"p": 42}
    with pytest.raises(DeviceTimeout):
        await link.read(the_device(link))
    timed_out, answered, garbage = tap.exchanges
    assert timed_out.received == b""
    assert "did not answer" in (timed_out.error or "")
    # the late reply to the first request arrived during the second and shows before
    # the second's answer, whole, with its own transaction id
    assert answered.received == frame(1, 1, stale) + frame(2, 1, ANSWER)
    assert answered.sent == frame(2, 1, READ)
    assert answered.error is None
    assert garbage.received == not_modbus
    assert "did not answer" in (garbage.error or "")
    assert link.counters("d") == {"late_replies": 1, "unframed_bytes": len(not_modbus)}


async def test_a_late_reply_that_comes_between_requests_shows_as_a_row_of_its_own(
    open_link: Callable[[Script], Awaitable[ModbusTcpLink]],
) -> None:
    requests = 0

    async def slow_once(transaction: int, unit: int, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        requests += 1
        if requests == 1:
            await asyncio.sleep(0.4)  # the device: 0.1 s past the request's timeout
        writer.write(frame(transaction, unit, ANSWER))

    link = await open_link(slow_once)
    tap = link.tap = Recorder()
    with pytest.raises(DeviceTimeout):
        await link.read(the_device(link))
    await eventually(lambda: link.counters("d")["late_replies"] == 1)  # none out meanwhile
    assert await link.read(the_device(link)) == {"p": 42}
    timed_out, between, answered = tap.exchanges
    assert timed_out.received == b""
    assert between.device == ""
    assert between.sent == b""
    assert between.received == frame(1, 1, ANSWER)  # the first request's, whole
    assert "after its timeout" in (between.error or "")
    assert timed_out.started < between.started < answered.started
    assert answered.received == frame(2, 1, ANSWER)
    link.tap = None
    assert await link.read(the_device(link)) == {"p": 42}
    assert len(tap.exchanges) == 3  # nothing recorded once nobody watches


async def test_only_late_replies_end_in_a_timeout_never_a_value(
    open_link: Callable[[Script], Awaitable[ModbusTcpLink]],
) -> None:
    async def always_late(transaction: int, unit: int, writer: asyncio.StreamWriter) -> None:
        writer.write(frame((transaction + 1) & 0xFFFF, unit, ANSWER))

    link = await open_link(always_late)
    with pytest.raises(DeviceTimeout):
        await link.read(the_device(link))


async def test_bytes_that_are_not_modbus_tcp_are_skipped_and_the_next_request_answered(
    open_link: Callable[[Script], Awaitable[ModbusTcpLink]],
) -> None:
    requests = 0

    async def garbage_first(transaction: int, unit: int, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        requests += 1
        if requests == 1:
            writer.write(struct.pack(">HHHB", transaction, 7, 3, unit) + b"\x03\x00")
        else:
            writer.write(frame(transaction, unit, ANSWER))

    link = await open_link(garbage_first)
    with pytest.raises(DeviceTimeout):
        await link.read(the_device(link))
    assert link.counters("d")["unframed_bytes"] == 9
    assert await link.read(the_device(link)) == {"p": 42}


async def test_a_peer_that_hangs_up_mid_reply_is_a_lost_link(
    open_link: Callable[[Script], Awaitable[ModbusTcpLink]],
) -> None:
    async def hang_up(transaction: int, unit: int, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(transaction, unit, ANSWER)[:5])
        await writer.drain()
        writer.close()

    link = await open_link(hang_up)
    with pytest.raises(LinkError):
        await link.read(the_device(link))
    assert not link.is_open
