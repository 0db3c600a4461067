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
import struct

#: SO_LINGER on, for 0 s: closing the socket resets the connection
_RESET = struct.pack("ii", 1, 0)


class SocketWriter:
    """The bridge's own write side of one connection: whole frames, one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        #: a frame was begun and not finished (the kernel would not take the rest in time,
        #: or the sender was cancelled): nothing can follow it on this connection
        self.broken = False
        self._sending = asyncio.Lock()
        self._stopped = False

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

    async def send(self, frame: bytes) -> bool:
        """Send ``frame`` whole, waiting for the kernel to take all of it; False (and not
        sent) once stopped."""
        async with self._sending:
            if self._stopped or self.broken:
                return False
            self.broken = True
            await self._send_all(memoryview(frame))
            self.broken = False
            return True

    async def _send_all(self, rest: memoryview) -> None:
        # Not loop.sock_sendall: cancelled, it stops watching the descriptor only in a
        # later callback (on asyncio's loop), by which time close() may have freed the
        # number for another connection. Here the watch ends before this returns or raises.
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(BlockingIOError):
                rest = rest[self.socket.send(rest) :]
            if not rest:
                return
            writable = loop.create_future()
            loop.add_writer(self.socket, _settle, writable)
            try:
                await writable
            finally:
                loop.remove_writer(self.socket)

    async def stop(self, within: float) -> bool:
        """Start no frame from now on; True once none is half-sent, False if one still is
        after ``within`` seconds (and will stay so: :meth:`reset` the connection)."""
        self._stopped = True
        try:
            async with asyncio.timeout(within), self._sending:
                pass
        except TimeoutError:
            self.broken = True
        return not self.broken

    def reset(self) -> None:
        """Send nothing more, and end the connection with a TCP reset when it is let go
        (:meth:`close`, once aiohttp has let go of its own descriptor too)."""
        self._stopped = True
        if self.socket.fileno() != -1:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)

    def close(self) -> None:
        """Let go of the duplicate: only once no send is under way, as the event loop may
        be watching its descriptor for one (the connection ends once aiohttp has let go of
        its own descriptor too)."""
        self._stopped = True
        self.socket.close()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
