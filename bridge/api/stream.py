"""``/api/v1/stream``: live readings over a WebSocket (contract §7).

The subscriber joins the hub and its snapshot (or its backlog, when resuming) is taken in
the same synchronous step, so no reading can fall between them. Its frames are then sent by
its own task; a client too slow to keep its queue from filling is closed with 1013.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from bridge.api.auth import check_origin
from bridge.api.problems import Problem
from bridge.api.query import BRIDGE, filters
from bridge.hub import Subscriber, encode
from bridge.readings import Reading

if TYPE_CHECKING:
    from bridge.service import Bridge

VERSION = 1
#: readings per frame when replaying a backlog
BACKLOG_CHUNK = 500
MAX_CLIENT_MESSAGE = 64 * 1024
#: bytes the kernel may hold for a stream client before its frames back up into its queue
SEND_BUFFER = 64 * 1024


def _readings_frames(readings: Sequence[Reading]) -> list[str]:
    return [
        encode(
            {"type": "readings", "readings": [r.to_json() for r in readings[i : i + BACKLOG_CHUNK]]}
        )
        for i in range(0, len(readings), BACKLOG_CHUNK)
    ]


def _snapshot(bridge: Bridge, subscriber: Subscriber) -> str:
    pairs = bridge.store.select(subscriber.devices, subscriber.points)
    latest = [bridge.store.latest(d, p) for d, p in pairs]
    return encode({"type": "snapshot", "readings": [r.to_json() for r in latest]})


def _since(request: web.Request) -> int | None:
    text = request.query.get("since")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):
        raise Problem(400, f"since={text!r} must be the seq of the last reading seen (0 or more)")
    return int(text)


async def handler(request: web.Request) -> web.StreamResponse:
    bridge = request.app[BRIDGE]
    devices, points = filters(bridge, request, frozenset({"since", "boot"}))
    since = _since(request)
    boot = request.query.get("boot")
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_CLIENT_MESSAGE)
    if not ws.can_prepare(request).ok:
        raise Problem(400, "this route is a WebSocket: connect with an Upgrade: websocket request")
    check_origin(request, bridge.settings.cors_origin_list)
    if len(bridge.hub.subscribers) >= bridge.settings.max_subscribers:
        raise Problem(
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

    subscriber = bridge.hub.subscribe()
    subscriber.set_filter(devices, points)
    try:
        # No await between subscribing and taking the first frames: nothing falls between.
        first = [
            encode(
                {
                    "type": "hello",
                    "version": VERSION,
                    "boot": bridge.store.boot,
                    "seq": bridge.store.seq,
                }
            )
        ]
        backlog = None
        if since is not None and (boot is None or boot == bridge.store.boot):
            backlog = bridge.store.published_since(
                since, bridge.store.select(subscriber.devices, subscriber.points)
            )
        if since is not None and backlog is None:
            first.append(
                encode({"type": "gap", "since": since, "oldest": bridge.store.oldest_kept_seq()})
            )
        if backlog is None:
            first.append(_snapshot(bridge, subscriber))
        else:
            first.extend(_readings_frames(backlog))
        for frame in first:
            await ws.send_str(frame)
        await _serve(bridge, ws, subscriber)
    finally:
        bridge.hub.unsubscribe(subscriber)
        if not ws.closed:
            await ws.close()
    return ws


async def _serve(bridge: Bridge, ws: web.WebSocketResponse, subscriber: Subscriber) -> None:
    async def send() -> None:
        while True:
            frame = await subscriber.queue.get()
            await ws.send_str(frame)

    async def watch_overflow() -> None:
        await subscriber.overflowed.wait()
        await ws.close(
            code=WSCloseCode.TRY_AGAIN_LATER,
            message=b"too slow: reconnect with since=<last seq> to resume",
        )

    async def watch_shutdown() -> None:
        await subscriber.shutting_down.wait()
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the bridge is stopping")

    async def receive() -> None:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            reply = _client_message(bridge, subscriber, message.data)
            if reply is not None:
                subscriber.offer(reply)

    loops = (send(), watch_overflow(), watch_shutdown(), receive())
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task


def _client_message(bridge: Bridge, subscriber: Subscriber, data: str) -> str | None:
    """Handle a client's message; the frame to answer with."""
    try:
        message: Any = json.loads(data)
    except ValueError:
        return encode({"type": "error", "detail": "not JSON"})
    if not isinstance(message, dict) or message.get("op") != "subscribe":
        return encode({"type": "error", "detail": 'expected {"op": "subscribe", ...}'})
    devices = message.get("devices") or []
    points = message.get("points") or []
    if not (
        isinstance(devices, list)
        and isinstance(points, list)
        and all(isinstance(x, str) for x in devices + points)
    ):
        return encode({"type": "error", "detail": "devices and points must be lists of strings"})
    unknown = [d for d in devices if d not in bridge.devices] + [
        p for p in points if not bridge.store.has(*p.partition("/")[::2])
    ]
    if unknown:
        return encode({"type": "error", "detail": f"unknown: {', '.join(unknown)}"})
    subscriber.set_filter(devices, points)
    return _snapshot(bridge, subscriber)
