"""The aiohttp application: the routes of README's "The API" over a running :class:`Bridge`."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ValidationError

from bridge import wire
from bridge.api import debug, metrics, stream
from bridge.api.auth import TOKEN, Tokens, auth_middleware, cors_middleware
from bridge.api.hosts import HOST_POLICY, HostPolicy, host_middleware
from bridge.api.openapi import Query, Route, document
from bridge.api.problems import ProblemError, problem_response, problems_middleware
from bridge.api.query import BRIDGE, bridge_of, filters, known_device, known_point, only_query
from bridge.api.reload import reload_handler
from bridge.api.schemas import (
    BrokerOut,
    DeviceDetailOut,
    DeviceOut,
    DevicesOut,
    HealthOut,
    HistoryOut,
    NorthOut,
    OutboxOut,
    PollOut,
    ReadingOut,
    ReadingsOut,
    ReadyOut,
    ReloadOut,
    WriteIn,
)
from bridge.logs import fields
from bridge.readings import PublishedReading, iso_time
from bridge.service import Bridge, audit, write_failure
from bridge.ui import page_handlers
from drivers.base import BadValue, DeviceTimeout, DriverError, LinkError

AUDITED: web.RequestKey[bool] = web.RequestKey("audited", bool)

#: request bodies are small JSON documents; anything larger is refused with 413
MAX_BODY = 64 * 1024


def json_response(
    body: BaseModel | dict[str, Any], status: int = 200, exclude: set[str] | None = None
) -> web.Response:
    """A JSON response: one of the API's models (see :mod:`bridge.api.schemas`), or a body
    of that shape built directly where a route is on a hot path (readings)."""
    document = (
        body.model_dump(mode="json", exclude=exclude) if isinstance(body, BaseModel) else body
    )
    return web.Response(status=status, body=wire.encode(document), content_type="application/json")


def readings_body(bridge: Bridge, readings: Iterable[PublishedReading]) -> dict[str, Any]:
    """:class:`ReadingsOut`'s shape: the readings with the boot id and latest seq."""
    return {
        "boot": bridge.store.boot,
        "seq": bridge.store.seq,
        "readings": [r.to_json() for r in readings],
    }


def device_summary(bridge: Bridge, device_id: str) -> DeviceOut:
    """A device as listed by ``/api/v1/devices``."""
    runtime = bridge.devices[device_id]
    return DeviceOut(
        id=device_id,
        driver=runtime.config.driver,
        status=runtime.status,
        last_success=iso_time(runtime.last_success) if runtime.last_success else None,
        last_error=runtime.last_error,
        points=[p.id for p in runtime.config.points],
    )


async def healthz(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    if not bridge.alive:
        return problem_response(503, "a poll loop has stopped")
    return json_response(HealthOut(status="ok"))


def broker_summary(bridge: Bridge) -> BrokerOut | None:
    """Whether the MQTT broker is connected (None when north is off)."""
    if bridge.north is None:
        return None
    status = bridge.north.describe()
    return BrokerOut(
        state=status["state"],
        connected=status["connected"],
        broker=status["broker"],
        prefix=status["prefix"],
    )


async def readyz(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    devices = {d.config.id: d.status for d in bridge.devices.values()}
    broker = broker_summary(bridge)
    extra: dict[str, Any] = {"mqtt": broker.model_dump()} if broker else {}
    if bridge.stopping:
        return problem_response(503, "shutting down", devices=devices, **extra)
    if not bridge.ready:
        waiting = [d for d, r in bridge.devices.items() if not r.tried]
        return problem_response(
            503, f"not yet tried: {', '.join(waiting)}", devices=devices, **extra
        )
    # A broker that is away is reported, not a reason to restart: the outbox keeps
    # everything until it is back.
    return json_response(
        ReadyOut(status="ready", devices=devices, mqtt=broker),
        exclude=None if broker else {"mqtt"},  # no MQTT, no key: the answer stays as it was
    )


async def north_status(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    if bridge.north is None:
        return json_response(NorthOut(enabled=False))
    status = bridge.north.describe()
    since = status.pop("connected_since")
    return json_response(
        NorthOut(
            enabled=True,
            connected_since=iso_time(since) if since else None,
            outbox=OutboxOut(**status.pop("outbox")),
            **status,
        )
    )


async def metrics_handler(request: web.Request) -> web.Response:
    body = metrics.render(bridge_of(request)).encode()
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def list_devices(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    broker = broker_summary(bridge)
    return json_response(
        DevicesOut(
            devices=[device_summary(bridge, d) for d in bridge.devices],
            mqtt=broker,
        ),
        exclude=None if broker else {"mqtt"},
    )


async def get_device(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    device_id = request.match_info["device"]
    known_device(bridge, device_id)
    runtime = bridge.devices[device_id]
    summary = device_summary(bridge, device_id)
    return json_response(
        DeviceDetailOut(
            **summary.model_dump(exclude={"points"}),
            interval=runtime.config.interval,
            timeout=runtime.config.timeout,
            points=[p.model_dump(mode="json", exclude_none=True) for p in runtime.config.points],
            stats={**runtime.stats(), "driver": bridge.driver_counters(device_id)},
        )
    )


async def readings(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    devices, points = filters(bridge, request)
    selected = bridge.store.select(devices, points)
    return json_response(readings_body(bridge, (bridge.store.latest(d, p) for d, p in selected)))


async def device_readings(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    device_id = request.match_info["device"]
    known_device(bridge, device_id)
    return json_response(readings_body(bridge, bridge.store.device_readings(device_id)))


async def point_reading(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    device_id, point_id = request.match_info["device"], request.match_info["point"]
    known_point(bridge, device_id, point_id)
    return json_response(bridge.store.latest(device_id, point_id).to_json())


#: Unix seconds as ``since`` takes them: a plain decimal number (no ``nan``, ``inf``, ``1_0``)
UNIX_SECONDS = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
#: the most readings ``limit`` may ask for (no point keeps more: see ``BRIDGE_HISTORY``)
MAX_LIMIT = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> float:
    """An ISO 8601 time (``Z`` or an offset; naive means UTC) or Unix seconds."""
    if UNIX_SECONDS.fullmatch(text):
        seconds = float(text)
        if math.isfinite(seconds):
            return seconds
    try:
        # RFC 3339 allows "t" and "z"; a "+" in an offset arrives as a space when not encoded
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ProblemError(400, f"since={text!r} is not an ISO 8601 time or Unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # by subtraction: ``timestamp()`` overflows for year 1 with a positive offset
    return (moment - EPOCH).total_seconds()


def parse_limit(text: str) -> int:
    """``limit``: a whole number from 1 to MAX_LIMIT, in ASCII digits."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise ProblemError(400, f"limit={text!r} must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


async def point_history(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    device_id, point_id = request.match_info["device"], request.match_info["point"]
    known_point(bridge, device_id, point_id)
    only_query(request, {"since", "limit"})
    since = parse_time(request.query["since"]) if "since" in request.query else None
    limit = parse_limit(request.query["limit"]) if "limit" in request.query else None
    kept = bridge.store.history(device_id, point_id, since, limit)
    return json_response({"readings": [r.to_json() for r in kept]})


async def poll_device(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    device_id = request.match_info["device"]
    known_device(bridge, device_id)
    try:
        polled = await bridge.poll_now(device_id)
    except DeviceTimeout as exc:
        raise ProblemError(504, str(exc)) from None
    except (LinkError, DriverError) as exc:
        raise ProblemError(503, f"device {device_id!r} is offline: {exc}") from None
    return json_response(
        {
            "device": device_id,
            "status": bridge.devices[device_id].status,
            "readings": [r.to_json() for r in polled],
        }
    )


async def write_point(request: web.Request) -> web.Response:
    bridge = bridge_of(request)
    device_id, point_id = request.match_info["device"], request.match_info["point"]
    known_point(bridge, device_id, point_id)
    point = bridge.devices[device_id].config.point(point_id)
    assert point is not None
    if not point.writable:
        raise ProblemError(403, f"point {device_id}/{point_id} is not writable")
    try:
        async with asyncio.timeout(bridge.settings.request_timeout):
            body = await request.read()
    except TimeoutError:
        raise ProblemError(
            408, f"the body did not arrive within {bridge.settings.request_timeout:g} s"
        ) from None
    try:
        wanted = WriteIn.model_validate_json(body)
    except ValidationError as exc:
        raise ProblemError(400, f'the body must be {{"value": ...}}: {_first_error(exc)}') from None
    token = request.get(TOKEN)
    request[AUDITED] = True  # from here on, Bridge.write leaves the audit line
    try:
        written = await bridge.write(
            device_id, point_id, wanted.value, token.name if token else "-"
        )
    except (BadValue, DriverError) as exc:
        failure = write_failure(exc, device_id)
        assert failure is not None
        raise ProblemError(*failure) from None
    return json_response(written.to_json())


@web.middleware
async def refused_writes_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An audit line for a write refused before it reached the device (401, 403, 400...)."""
    try:
        return await handler(request)
    except (ProblemError, web.HTTPException) as exc:
        if request.method == "PUT" and not request.get(AUDITED):
            token = request.get(TOKEN)
            status = exc.status
            detail = exc.detail if isinstance(exc, ProblemError) else exc.reason
            who = token.name if token else "-"
            audit.info(
                "write by=%s path=%s result=refused %s: %s", who, request.path, status, detail,
                extra=fields(who=who, path=request.path, result=f"refused {status}: {detail}"),
            )  # fmt: skip
        raise


def _first_error(error: ValidationError) -> str:
    item = error.errors(include_url=False)[0]
    where = ".".join(str(p) for p in item["loc"])
    return f"{where}: {item['msg']}" if where else item["msg"]


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
            problems_middleware,
            host_middleware(policy),
            refused_writes_middleware,
            auth_middleware(
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
