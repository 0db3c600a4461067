"""What the debugging page needs beyond the readings: links and their plans, and traffic.

``GET /api/v1/links`` lists every link (a TCP endpoint, a serial port), the devices that
share it and the requests each poll of them sends. ``GET /api/v1/traffic`` is a WebSocket
of every link's requests and answers while it is open (see :mod:`bridge.traffic`).
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from bridge.api.auth import WS_PROTOCOL
from bridge.api.hosts import HOST_POLICY, check_origin
from bridge.api.openapi import Route
from bridge.api.problems import ProblemError
from bridge.api.query import bridge_of, only_query
from bridge.api.schemas import LinkDeviceOut, LinkOut, LinksOut
from bridge.api.stream import send_text
from bridge.traffic import KEPT
from bridge.wire import encode

#: traffic views open at once, over every listener
MAX_VIEWERS = 10


async def list_links(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    only_query(request, set())
    links = []
    for poller in bridge.pollers:
        devices = [
            LinkDeviceOut(
                id=runtime.config.id,
                plan=bridge.driver_of[runtime.config.id].describe(runtime.config),
            )
            for runtime in poller.devices
        ]
        driver = poller.devices[0].config.driver
        links.append(LinkOut(key=poller.key, driver=driver, open=poller.link.is_open,
                             devices=devices))  # fmt: skip
    body = LinksOut(links=links, traffic_watched=bridge.traffic.watched)
    return web.Response(text=body.model_dump_json(), content_type="application/json")


async def traffic(request: web.Request) -> web.StreamResponse:
    """Frames: ``hello`` (links, and how many exchanges each keeps), the kept exchanges
    oldest first, then each new one as it happens. Client messages are ignored."""
    bridge = bridge_of(request)
    only_query(request, set())
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096, protocols=(WS_PROTOCOL,))
    if not ws.can_prepare(request).ok:
        raise ProblemError(
            400, "this route is a WebSocket: connect with an Upgrade: websocket request"
        )
    check_origin(request, request.app[HOST_POLICY])
    if len(bridge.traffic.viewers) >= MAX_VIEWERS:
        raise ProblemError(
            503, f"too many traffic views ({MAX_VIEWERS})", headers={"Retry-After": "5"}
        )
    await ws.prepare(request)
    viewer, kept = bridge.traffic.watch()
    try:
        links = [poller.key for poller in bridge.pollers]
        await send_text(ws, encode({"type": "hello", "links": links, "kept": KEPT}))
        for frame in kept:
            await send_text(ws, frame)

        async def send() -> None:
            while True:
                await send_text(ws, await viewer.queue.get())

        async def receive() -> None:
            async for _ in ws:
                pass

        tasks = [asyncio.create_task(job) for job in (send(), receive(), viewer.closing.wait())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
    finally:
        bridge.traffic.leave(viewer)
        if not ws.closed:
            await ws.close()
    return ws


LINKS_ROUTE = Route(
    "GET", "/api/v1/links", list_links,
    "Every link, the devices sharing it and the requests each poll of them sends", LinksOut,
    (400,),
)  # fmt: skip
TRAFFIC_ROUTE = Route(
    "GET", "/api/v1/traffic", traffic,
    "Every link's requests and answers over a WebSocket, while it is open", None,
    (400, 403, 404, 503),
    description="Served where the page is (not on the API port with BRIDGE_UI=false). "
    "Frames: hello, the kept exchanges (up to 200 a link), then each new one.",
)  # fmt: skip
