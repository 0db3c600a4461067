"""The aiohttp application: the route table of README's "The API" and its middlewares over a
running :class:`Bridge`. The handlers live by concern: health, devices (reads), writes, reload,
stream, debug."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from bridge.api import debug, stream
from bridge.api.auth import Tokens, cors_middleware
from bridge.api.devices import (
    MAX_LIMIT,
    device_readings,
    get_device,
    list_devices,
    point_history,
    point_reading,
    readings,
)
from bridge.api.gate import gate_middleware
from bridge.api.health import healthz, metrics_handler, north_status, readyz
from bridge.api.hosts import HOST_POLICY, HostPolicy
from bridge.api.openapi import Query, Route, document
from bridge.api.problems import problems_middleware
from bridge.api.query import BRIDGE, bridge_of
from bridge.api.reload import reload_handler
from bridge.api.schemas import (
    DeviceDetailOut,
    DevicesOut,
    HealthOut,
    HistoryOut,
    NorthOut,
    PollOut,
    ReadingOut,
    ReadingsOut,
    ReadyOut,
    ReloadOut,
    WriteIn,
)
from bridge.api.writes import MAX_BODY, poll_device, write_point
from bridge.service import Bridge
from bridge.ui import page_handlers


async def openapi_handler(request: web.Request) -> web.Response:
    settings = bridge_of(request).settings
    return web.json_response(document(ROUTES, settings.root_path))


DEVICE_FILTER = Query("device", "a device id; repeatable", repeat=True)
POINT_FILTER = Query(
    "point", "device/point, or a point id narrowing the devices named; repeatable", repeat=True
)
READINGS = "Latest readings"

ROUTES: list[Route] = [
    Route("GET", "/healthz", healthz, "The process and its poll loops are alive",
          HealthOut, (503,), open=True),
    Route("GET", "/readyz", readyz, "Every device has been tried at least once",
          ReadyOut, (503,)),
    Route("GET", "/metrics", metrics_handler, "Prometheus metrics", None,
          answer_type="text/plain"),
    Route("GET", "/openapi.json", openapi_handler, "This document", None,
          answer_type="application/json"),
    Route("GET", "/api/v1/devices", list_devices, "Every device", DevicesOut),
    Route("GET", "/api/v1/north", north_status,
          "North over MQTT: the broker connection, the outbox, counters", NorthOut),
    Route("GET", "/api/v1/devices/{device}", get_device,
          "One device, its point definitions and poll statistics", DeviceDetailOut, (404,)),
    Route("GET", "/api/v1/readings", readings, READINGS, ReadingsOut, (400, 404),
          (DEVICE_FILTER, POINT_FILTER)),
    Route("GET", "/api/v1/devices/{device}/readings", device_readings,
          "Latest readings of one device", ReadingsOut, (404,)),
    Route("GET", "/api/v1/devices/{device}/points/{point}", point_reading,
          "Latest reading of one point", ReadingOut, (404,)),
    Route("GET", "/api/v1/devices/{device}/points/{point}/history", point_history,
          "Kept readings of one point, oldest first", HistoryOut, (400, 404),
          (Query("since", "readings read at or after this time: ISO 8601 or Unix seconds",
                 {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]}),
           Query("limit", "most readings to return",
                 {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}))),
    Route("POST", "/api/v1/devices/{device}/poll", poll_device,
          "Poll the device now, through its link's queue", PollOut, (404, 503, 504)),
    Route("PUT", "/api/v1/devices/{device}/points/{point}", write_point,
          "Write a value, read the device back, answer the new reading", ReadingOut,
          (400, 403, 404, 413, 422, 502, 503, 504), body=WriteIn, write=True,
          description="Needs a write token. Never retried. Leaves one audit log line."),
    Route("POST", "/api/v1/reload", reload_handler,
          "Re-read the device file and apply the difference", ReloadOut, (403, 409, 422),
          write=True,
          description="Needs a write token. Devices defined as before keep polling, their "
          "readings and their seq history; a file with errors changes nothing."),
    Route("GET", "/api/v1/stream", stream.handler,
          "Live readings over a WebSocket (connect with Upgrade: websocket)", None,
          (400, 403, 404, 503),
          (DEVICE_FILTER, POINT_FILTER,
           Query("since", "resume after this seq", {"type": "integer", "minimum": 0}),
           Query("boot", "the boot id the since belongs to")),
          description="Without an Upgrade: websocket header the answer is 400.",
          operation_id="stream"),
    debug.LINKS_ROUTE,
    debug.TRAFFIC_ROUTE,
]  # fmt: skip


#: the routes that need no token, as their ``open`` marks say
OPEN_HANDLERS = frozenset(route.handler for route in ROUTES if route.open)


def routes(app: web.Application, ui: bool) -> frozenset[Handler]:
    """Register the routes (the page's too, with ``ui``); the handlers needing no token."""
    open_handlers: set[Handler] = set(OPEN_HANDLERS)
    for route in ROUTES:
        if route is not debug.TRAFFIC_ROUTE or ui:
            app.router.add_route(route.method, route.path, route.handler)
    if ui:
        page, asset = page_handlers()
        app.router.add_get("/", page)
        app.router.add_get("/ui/{name}", asset)
        open_handlers |= {page, asset}
    return frozenset(open_handlers)


def make_app(bridge: Bridge, ui: bool | None = None) -> web.Application:
    """The application, with every route under ``BRIDGE_ROOT_PATH``.

    ``ui``: whether it serves the page and the traffic view (default: ``BRIDGE_UI``).
    """
    settings = bridge.settings
    ui = settings.ui if ui is None else ui
    origins = settings.cors_origin_list
    # CORS outermost: an error (401, 404, ...) must reach the page that asked, to be read.
    # With no origins there is no CORS at all, and no layer for it on every request.
    cors = [cors_middleware(origins)] if origins else []
    policy = HostPolicy(settings)
    api = web.Application(client_max_size=MAX_BODY)
    open_handlers = routes(api, ui)
    api.middlewares.extend(
        [
            *cors,
            gate_middleware(
                policy,
                Tokens(settings),
                open_handlers,
                frozenset(r.handler for r in ROUTES if r.write and r.method != "PUT"),
            ),
        ]
    )
    api[BRIDGE] = bridge
    api[HOST_POLICY] = policy

    async def close_streams(app: web.Application) -> None:
        # Stream handlers run until their client leaves: without this, shutting down
        # would wait out the whole grace period for them.
        bridge.hub.close_all()
        bridge.traffic.close_all()

    api.on_shutdown.append(close_streams)
    if not settings.root_path:
        return api
    outer = web.Application(middlewares=[*cors, problems_middleware], client_max_size=MAX_BODY)
    if ui:
        # the page's relative links need the trailing slash (before the sub-application,
        # whose prefix would match the bare path first)
        outer.router.add_get(settings.root_path, _to_page)
    outer.add_subapp(settings.root_path, api)
    return outer


async def _to_page(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect(request.path + "/")
