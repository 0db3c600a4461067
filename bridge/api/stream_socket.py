"""The write side of a plain stream connection, which the bridge takes over from aiohttp.

Once the WebSocket handshake is done, every frame of a plain TCP stream connection (no TLS,
no compression) is written by the bridge itself, to a duplicate of the connection's socket:
the hub sends whole frames to it straight away (:meth:`bridge.hub.Subscriber.attach`), the
connection's sender task sends those that were queued (:meth:`SocketWriter.send`), and
aiohttp writes nothing but its close frame, after :meth:`SocketWriter.stop`. With a thousand
subscribers, a write through each connection's transport, with the checks it needs first,
cost about half as much again as the system call itself.

The duplicate keeps the socket the connection's for as long as the bridge holds it, whatever
aiohttp does with its own file descriptor: a frame can never reach a descriptor the kernel
has since given to another connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket


class SocketWriter:
    """The bridge's own write side of one connection: whole frames, one sender at a time.

    A frame is *open* while some of its bytes are in the kernel and some are not: the
    sender's own, or one the hub began and whose rest it queued (:meth:`begun`). Nothing
    else may be written until it is finished, and a close frame waits for that
    (:meth:`stop`).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self._idle = asyncio.Event()  # set while no frame is open
        self._idle.set()
        self._stopped = False
        self._closed = False
        self._waiting: asyncio.Future[None] | None = None

    @classmethod
    def of(cls, transport: asyncio.BaseTransport | None) -> SocketWriter | None:
        """The writer of a plain TCP connection; None over TLS, where the transport
        encrypts what is written, or without a socket."""
        if transport is None or transport.get_extra_info("sslcontext") is not None:
            return None
        raw = transport.get_extra_info("socket")
        if raw is None or raw.type != socket.SOCK_STREAM:
            return None
        sock = socket.socket(fileno=os.dup(raw.fileno()))
        sock.setblocking(False)
        return cls(sock)

    @property
    def frame_open(self) -> bool:
        return not self._idle.is_set()

    def begun(self) -> None:
        """The hub sent part of a frame and queued the rest: the frame is open until the
        sender has sent that rest."""
        self._idle.clear()

    async def send(self, data: bytes) -> bool:
        """Send ``data`` (whole frames, or the rest of the open frame) all of it, waiting
        for the kernel to take it; False (and nothing sent) once closed, or once stopped
        unless it finishes the open frame."""
        if self._closed or (self._stopped and not self.frame_open):
            return False
        self._idle.clear()
        await self._send_all(memoryview(data))
        self._idle.set()
        return True

    async def _send_all(self, rest: memoryview) -> None:
        # Not loop.sock_sendall: cancelled, it stops watching the descriptor only in a
        # later callback (on asyncio's loop), by which time close() may have freed the
        # number for another connection. Here the watch ends before this returns or
        # raises, and close() ends it at once.
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(BlockingIOError):
                rest = rest[self.socket.send(rest) :]
            if not rest:
                return
            writable = self._waiting = loop.create_future()
            loop.add_writer(self.socket, _settle, writable)
            try:
                await writable
            finally:
                if self._waiting is writable:
                    self._waiting = None
                    loop.remove_writer(self.socket)

    async def stop(self, within: float) -> bool:
        """Start no frame from now on; True once no frame is open, False if one still is
        after ``within`` seconds (it will stay so: the connection must be cut)."""
        self._stopped = True
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Let go of the duplicate, ending a send under way (the connection ends once
        aiohttp's descriptor is closed too)."""
        self._stopped = self._closed = True
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            asyncio.get_running_loop().remove_writer(self.socket)
            if not waiting.done():
                waiting.set_exception(ConnectionAbortedError("the connection was cut"))
        self.socket.close()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
