"""``/api/v1/stream``: live readings over a WebSocket (README, "Stream").

The subscriber joins the hub and its snapshot (or its backlog, when resuming) is taken in
the same synchronous step, so no reading can fall between them. Its frames (built in
:mod:`bridge.wire`, already encoded) are then sent by the hub straight to the
connection's socket while nothing is pending for it (a plain connection: no TLS, no
compression; :mod:`bridge.api.stream_socket`), and otherwise queued and sent in order by
one task of its own, while the handler reads the client's messages; a client too slow to
keep its queue from filling is closed with 1013. The bridge pings each client every 30 s
and cuts one that has not answered within 15 s. permessage-deflate is off unless
``BRIDGE_STREAM_COMPRESS`` is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from bridge import wire, wsframe
from bridge.api.auth import WS_PROTOCOL
from bridge.api.hosts import HOST_POLICY, check_origin
from bridge.api.problems import ProblemError
from bridge.api.query import BRIDGE, filters
from bridge.api.stream_socket import SocketWriter
from bridge.hub import Closing, Subscriber

if TYPE_CHECKING:
    from bridge.service import Bridge

MAX_CLIENT_MESSAGE = 64 * 1024
#: bytes the kernel may hold for a stream client before its frames back up into its queue
SEND_BUFFER = 64 * 1024
#: bytes of queued frames the sender joins into one send, at most (plus one frame)
SEND_BATCH = 256 * 1024
#: SO_LINGER on, for 0 s: closing the socket resets the connection
RESET = struct.pack("ii", 1, 0)
#: seconds a close handshake may take before the connection is cut
CLOSE_TIMEOUT = 1.0
#: seconds between the bridge's pings to a client; it must answer within half of that
HEARTBEAT = 30.0


class StreamSocket(web.WebSocketResponse):
    """aiohttp's WebSocket response, letting go of the bridge's writes before any close
    frame.

    aiohttp sends a close frame itself in some cases (the client's close, a protocol
    error), always through :meth:`close`; the hub sends frames straight to the socket,
    and none may follow a close frame, nor may a close frame fall in the middle of one.
    """

    subscriber: Subscriber | None = None
    writer: SocketWriter | None = None
    connection: asyncio.Transport | None = None
    #: the connection was cut (aborted) instead of closed with a close frame
    cut_off = False
    #: cut because a close did not finish within CLOSE_TIMEOUT
    stalled = False

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        if self.subscriber is not None:
            self.subscriber.detach()
        if (
            self.writer is not None
            and not self.cut_off
            and not await self.writer.stop(CLOSE_TIMEOUT)
        ):
            self.cut(stalled=True)  # a frame is open and stays so: nothing can follow it
        # once cut, aiohttp only marks the response closed (its transport refuses writes)
        return await super().close(code=code, message=message, drain=drain)

    def cut(self, stalled: bool = False) -> None:
        """Abort the connection at once: no close frame, a TCP reset."""
        if self.subscriber is not None:
            self.subscriber.detach()
        self.cut_off = True
        self.stalled = self.stalled or stalled
        sock = self.connection.get_extra_info("socket") if self.connection else None
        if sock is not None and sock.fileno() != -1:
            # a reset, not a FIN queued behind what a stalled client never reads
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
        if self.writer is not None:
            self.writer.close()
        if self.connection is not None:
            self.connection.abort()


async def close_bounded(ws: StreamSocket, code: int, message: bytes = b"") -> bool:
    """Close the WebSocket within CLOSE_TIMEOUT, else cut its connection; True if this
    close was cut for that.

    A client whose TCP window is full never takes the close frame, and a plain close of
    the transport waits for its buffer to drain, for ever: so the transport is aborted.
    """
    stalled = ws.stalled
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await ws.close(code=code, message=message)
    except TimeoutError:
        ws.cut(stalled=True)
    return ws.stalled and not stalled


async def send_text(ws: web.WebSocketResponse, payload: bytes) -> None:
    """Send UTF-8 JSON that is already encoded as one text frame (no re-encoding)."""
    await ws.send_frame(payload, WSMsgType.TEXT)


def _snapshot(bridge: Bridge, subscriber: Subscriber) -> bytes:
    store = bridge.store
    return wire.snapshot(store.latest(d, p) for d, p in store.matching(subscriber.filter))


def _first_frames(
    bridge: Bridge, subscriber: Subscriber, since: int | None, boot: str | None
) -> list[bytes]:
    """hello, then the snapshot, or the backlog after ``since`` (a gap first if lost)."""
    store = bridge.store
    first = [wire.hello(store.boot, store.seq)]
    backlog = None
    if since is not None and (boot is None or boot == store.boot):
        backlog = store.published_since(since, store.matching(subscriber.filter))
    if since is not None and backlog is None:
        first.append(wire.gap(since, store.oldest_kept_seq()))
    if backlog is None:
        first.append(_snapshot(bridge, subscriber))
    else:
        first.extend(wire.backlog(backlog))
    return first


def _since(request: web.Request) -> int | None:
    text = request.query.get("since")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):
        raise ProblemError(
            400, f"since={text!r} must be the seq of the last reading seen (0 or more)"
        )
    return int(text)


async def handler(request: web.Request) -> web.StreamResponse:
    bridge = request.app[BRIDGE]
    devices, points = filters(bridge, request, frozenset({"since", "boot"}))
    since = _since(request)
    boot = request.query.get("boot")
    ws = StreamSocket(
        autoping=False,  # pings and pongs are the bridge's own (_serve, _keep_alive)
        max_msg_size=MAX_CLIENT_MESSAGE,
        compress=bridge.settings.stream_compress,
        timeout=CLOSE_TIMEOUT,
        protocols=(WS_PROTOCOL,),
    )
    if not ws.can_prepare(request).ok:
        raise ProblemError(
            400, "this route is a WebSocket: connect with an Upgrade: websocket request"
        )
    check_origin(request, request.app[HOST_POLICY])
    if len(bridge.hub.subscribers) >= bridge.settings.max_subscribers:
        raise ProblemError(
            503,
            f"too many stream clients ({bridge.settings.max_subscribers}); try again later",
            headers={"Retry-After": "5"},
        )
    await ws.prepare(request)
    # With the kernel's default send buffer (megabytes, autotuned) a stalled client would
    # be noticed only after that much; a small one makes the subscriber queue the limit.
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)

    ws.connection = request.transport
    writer = ws.writer = None if ws.compress else SocketWriter.of(request.transport)
    subscriber = bridge.hub.subscribe(whole_frames=writer is not None)
    subscriber.set_filter(devices, points)
    try:
        # No await between subscribing and taking the first frames: nothing falls between.
        await _serve(bridge, ws, subscriber, _first_frames(bridge, subscriber, since, boot))
    finally:
        try:
            bridge.hub.unsubscribe(subscriber)
            if not ws.closed:
                await _close(bridge, ws, (WSCloseCode.OK, b""))
        finally:
            if writer is not None:
                writer.close()
    return ws


async def _serve(
    bridge: Bridge, ws: StreamSocket, subscriber: Subscriber, first: list[bytes]
) -> None:
    """Send the first frames, then queued frames from one task, and read the client's
    messages in this one.

    Closing (the hub asks it: too slow, or the bridge stopping) gets a task of its own
    when it happens, so that it does not wait behind a send to a slow client; it and the
    pings are in force from the first frame on.
    """
    closers: list[asyncio.Task[None]] = []

    def close(closing: Closing) -> None:
        bridge.hub.unsubscribe(subscriber)  # its slot is free now, not once it has closed
        closers.append(asyncio.get_running_loop().create_task(_close(bridge, ws, closing)))

    pong = asyncio.Event()
    tasks = [asyncio.create_task(_keep_alive(ws, subscriber, pong))]
    subscriber.on_close = close
    if subscriber.closing is not None:
        close(subscriber.closing)
    try:
        for frame in first:
            if ws.writer is None:
                await send_text(ws, frame)
            elif not await ws.writer.send(wsframe.text_frame(frame)):
                return
        tasks.append(asyncio.create_task(_send_queued(ws, subscriber)))
        if ws.writer is not None:
            ws.subscriber = subscriber
            subscriber.attach(ws.writer)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                reply = _client_message(bridge, subscriber, message.data)
                if reply is not None:
                    subscriber.offer(reply)
            elif message.type is WSMsgType.PING:
                await _control(ws, subscriber, WSMsgType.PONG, message.data)
            elif message.type is WSMsgType.PONG:
                pong.set()
            elif message.type is WSMsgType.ERROR:
                break
    except OSError:  # the client is gone in the middle of a send: nothing more to say
        ws.cut()
    finally:
        subscriber.detach()
        ws.subscriber = None
        subscriber.on_close = None
        for task in tasks:
            task.cancel()
        for task in (*tasks, *closers):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task


async def _control(
    ws: StreamSocket, subscriber: Subscriber, kind: WSMsgType, payload: bytes = b""
) -> None:
    """Send a ping or a pong in order with the stream's frames."""
    if ws.writer is None:
        await (ws.pong(payload) if kind is WSMsgType.PONG else ws.ping(payload))
    else:
        pong = kind is WSMsgType.PONG
        subscriber.offer_frame(wsframe.pong_frame(payload) if pong else wsframe.ping_frame())


async def _keep_alive(ws: StreamSocket, subscriber: Subscriber, pong: asyncio.Event) -> None:
    """Ping the client every HEARTBEAT seconds; cut it if it has not answered within half
    of that (it is gone, or has stopped reading for that long)."""
    while True:
        await asyncio.sleep(HEARTBEAT)
        pong.clear()
        try:
            async with asyncio.timeout(HEARTBEAT / 2):
                await _control(ws, subscriber, WSMsgType.PING)
                await pong.wait()
        except TimeoutError:
            ws.cut()
            return


async def _send_queued(ws: StreamSocket, subscriber: Subscriber) -> None:
    """Send the queue in order: one frame at a time through aiohttp, or, to a socket the
    bridge writes itself, what is queued so far (up to SEND_BATCH) in one go: a client
    that fell behind catches up in fewer system calls. The rest of a frame the hub began
    is sent even once the connection is closing: the close frame waits for it."""
    queue = subscriber.queue
    writer = ws.writer
    while True:
        frames = [await queue.get()]
        try:
            if writer is not None and writer.frame_open:
                if not await writer.send(frames[0]):
                    return
                continue
            # closed: aiohttp has sent its close frame, or is sending it (it may be
            # waiting for the same drain as this task was), and nothing may follow it
            if subscriber.closing is not None or ws.closed:
                return
            if writer is None:
                await send_text(ws, frames[0])
                continue
            size = len(frames[0])
            while size < SEND_BATCH and not queue.empty():
                frames.append(queue.get_nowait())
                size += len(frames[-1])
            if not await writer.send(b"".join(frames)):
                return  # stopped: the close frame comes next
        finally:
            for _ in frames:
                subscriber.sent()


async def _close(bridge: Bridge, ws: StreamSocket, closing: Closing) -> None:
    code, reason = closing
    if await close_bounded(ws, code, reason):
        bridge.hub.stalls += 1


def _client_message(bridge: Bridge, subscriber: Subscriber, data: str) -> bytes | None:
    """Handle a client's message; the frame to answer with."""
    try:
        message: Any = json.loads(data)
    except ValueError:
        return wire.error("not JSON")
    if not isinstance(message, dict) or message.get("op") != "subscribe":
        return wire.error('expected {"op": "subscribe", ...}')
    devices = message.get("devices") or []
    points = message.get("points") or []
    if not (
        isinstance(devices, list)
        and isinstance(points, list)
        and all(isinstance(x, str) for x in devices + points)
    ):
        return wire.error("devices and points must be lists of strings")
    unknown = [d for d in devices if d not in bridge.devices] + [
        p for p in points if not bridge.store.has(*p.partition("/")[::2])
    ]
    if unknown:
        return wire.error(f"unknown: {', '.join(unknown)}")
    subscriber.set_filter(devices, points)
    return _snapshot(bridge, subscriber)
