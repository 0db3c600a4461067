"""Modbus TCP framing (the MBAP header) and the connection that carries it.

A frame is a 7-byte header, transaction id, protocol id (0), length (of what follows:
the unit id and the PDU) and unit id, then the PDU (Modbus Messaging on TCP/IP
Implementation Guide, 3.1.3, as the README's driver section describes). One request at a
time is outstanding on a :class:`MbapConnection`: its reply is the next frame that carries
its transaction id; a frame with any other id (a reply that came after its request timed
out) is dropped and counted, and bytes that cannot be a frame are dropped with whatever
is buffered, since nothing after them can be trusted to start a frame.
"""

from __future__ import annotations

import asyncio
import time
from struct import Struct
from typing import cast

from drivers.base import LinkError

HEADER = Struct(">HHHB")
#: the largest PDU a frame may carry (the length field counts the unit id too)
MAX_PDU = 253


def frame(transaction: int, unit: int, pdu: bytes) -> bytes:
    """One MBAP frame carrying ``pdu`` to ``unit``."""
    return HEADER.pack(transaction, 0, len(pdu) + 1, unit) + pdu


class MbapConnection(asyncio.Protocol):
    """A Modbus TCP connection as an asyncio protocol: one request at a time."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.transport: asyncio.Transport | None = None
        self.lost = False
        #: frames with another request's transaction id (late replies), dropped
        self.late = 0
        #: bytes that could not start a frame (dropped with what was buffered after them)
        self.unframed = 0
        self._buffer = bytearray()
        #: the id of the latest request (its frame is :func:`frame` of it)
        self.transaction = 0
        #: while not None (the link's traffic is watched), every byte that arrives is added
        #: to it as it came, late replies and unframed bytes included, and the time of the
        #: latest is kept
        self.capture: bytearray | None = None
        self.captured_at = 0.0
        self._waiting: tuple[int, asyncio.Future[tuple[int, bytes]]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's is not a subclass of asyncio's, only alike)
        self.transport = cast("asyncio.Transport", transport)
        self._loop = asyncio.get_running_loop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(LinkError(f"connection to {self.where} is lost"))

    def data_received(self, data: bytes) -> None:
        if self.capture is not None:
            self.capture += data
            self.captured_at = time.time()
        buffer = self._buffer
        buffer += data
        while len(buffer) >= HEADER.size:
            transaction, protocol, length, unit = HEADER.unpack_from(buffer)
            if protocol != 0 or not 2 <= length <= MAX_PDU + 1:
                self.unframed += len(buffer)
                buffer.clear()
                return
            end = 6 + length
            if len(buffer) < end:
                return
            pdu = bytes(buffer[HEADER.size : end])
            del buffer[:end]
            waiting = self._waiting
            if waiting is not None and waiting[0] == transaction and not waiting[1].done():
                self._waiting = None
                waiting[1].set_result((unit, pdu))
            else:
                self.late += 1

    async def transact(self, unit: int, pdu: bytes, within: float) -> tuple[int, bytes]:
        """Send one request PDU; the (unit, PDU) of the frame that answers it.

        Raises TimeoutError when none came ``within`` seconds (a reply that comes
        later is dropped; so it is if the caller cancels), LinkError when the connection
        is lost.
        """
        if self.lost or self.transport is None or self._loop is None:
            raise LinkError(f"connection to {self.where} is lost")
        self.transaction = (self.transaction + 1) & 0xFFFF
        future: asyncio.Future[tuple[int, bytes]] = self._loop.create_future()
        self._waiting = (self.transaction, future)
        # What is buffered belongs to earlier requests: a part of a late reply must not
        # be taken for the start of this one's.
        self._buffer.clear()
        self.transport.write(frame(self.transaction, unit, pdu))
        # A timer of its own rather than asyncio.timeout: this runs once a poll, and the
        # context manager costs several times as much.
        timer = self._loop.call_later(within, _time_out, future)
        try:
            return await future
        finally:
            timer.cancel()
            if self._waiting is not None and self._waiting[1] is future:
                self._waiting = None

    def _fail(self, exc: Exception) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting[1].done():
            waiting[1].set_exception(exc)


def _time_out(future: asyncio.Future[tuple[int, bytes]]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
