"""The aiohttp application: routes of contract §6 over a running :class:`Bridge`."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bridge.api import metrics, stream
from bridge.api.problems import Problem, problem_response, problems_middleware
from bridge.readings import iso_time
from bridge.service import Bridge
from drivers.base import DeviceTimeout, DriverError, LinkError

BRIDGE: web.AppKey[Bridge] = web.AppKey("bridge", Bridge)

#: request bodies are small JSON documents; anything larger is refused with 413
MAX_BODY = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body, ensure_ascii=False), content_type="application/json"
    )


def _bridge(request: web.Request) -> Bridge:
    return request.app[BRIDGE]


def device_summary(bridge: Bridge, device_id: str) -> dict[str, Any]:
    """A device as listed by ``/api/v1/devices``."""
    runtime = bridge.devices[device_id]
    return {
        "id": device_id,
        "driver": runtime.config.driver,
        "status": runtime.status,
        "last_success": iso_time(runtime.last_success) if runtime.last_success else None,
        "last_error": runtime.last_error,
        "points": [p.id for p in runtime.config.points],
    }


def known_device(bridge: Bridge, device_id: str) -> None:
    if device_id not in bridge.devices:
        raise Problem(404, f"no device {device_id!r} (devices: {', '.join(bridge.devices)})")


def known_point(bridge: Bridge, device_id: str, point_id: str) -> None:
    known_device(bridge, device_id)
    if not bridge.store.has(device_id, point_id):
        points = ", ".join(p.id for p in bridge.devices[device_id].config.points)
        raise Problem(404, f"device {device_id!r} has no point {point_id!r} (points: {points})")


def filters(
    bridge: Bridge, request: web.Request, other: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """The repeatable ``device`` and ``point`` query filters, checked against the devices.

    ``point`` is ``device/point``, or a bare point id which then applies to every device
    named by ``device`` (or every device, if none is named). ``other`` names the further
    parameters the route takes; any else is a bad query.
    """
    unknown = set(request.query) - {"device", "point"} - other
    if unknown:
        raise Problem(400, f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    devices = request.query.getall("device", [])
    for device in devices:
        known_device(bridge, device)
    points: list[str] = []
    narrowed = False
    for name in request.query.getall("point", []):
        if "/" in name:
            device, _, point = name.partition("/")
            known_point(bridge, device, point)
            points.append(name)
            continue
        narrowed = True
        scope = devices or list(bridge.devices)
        matches = [f"{d}/{name}" for d in scope if bridge.store.has(d, name)]
        if not matches:
            raise Problem(404, f"no point {name!r} on {', '.join(scope)}")
        points.extend(matches)
    if narrowed:
        # A bare point id narrows the named devices to that point; it does not add to them.
        devices = []
    return devices, points


async def healthz(request: web.Request) -> web.Response:
    bridge = _bridge(request)
    if not bridge.alive:
        return problem_response(503, "a poll loop has stopped")
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    bridge = _bridge(request)
    devices = {d.config.id: d.status for d in bridge.devices.values()}
    if bridge.stopping:
        return problem_response(503, "shutting down", devices=devices)
    if not bridge.ready:
        waiting = [d for d, r in bridge.devices.items() if not r.tried]
        return problem_response(503, f"not yet tried: {', '.join(waiting)}", devices=devices)
    return json_response({"status": "ready", "devices": devices})


async def metrics_handler(request: web.Request) -> web.Response:
    return web.Response(
        text=metrics.render(_bridge(request)),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Hint": "version=0.0.4"},
    )


async def list_devices(request: web.Request) -> web.Response:
    bridge = _bridge(request)
    return json_response({"devices": [device_summary(bridge, d) for d in bridge.devices]})


async def get_device(request: web.Request) -> web.Response:
    bridge = _bridge(request)
    device_id = request.match_info["device"]
    known_device(bridge, device_id)
    runtime = bridge.devices[device_id]
    body = device_summary(bridge, device_id)
    body["points"] = [
        p.model_dump(exclude_none=True, exclude_defaults=False) for p in runtime.config.points
    ]
    body["interval"] = runtime.config.interval
    body["timeout"] = runtime.config.timeout
    body["stats"] = {**runtime.stats(), "driver": bridge.driver_counters(device_id)}
    return json_response(body)


async def readings(request: web.Request) -> web.Response:
    bridge = _bridge(request)
    devices, points = filters(bridge, request)
    selected = bridge.store.select(devices, points)
    return json_response(
        {
            "boot": bridge.store.boot,
            "seq": bridge.store.seq,
            "readings": [bridge.store.latest(d, p).to_json() for d, p in selected],
        }
    )


async def device_readings(request: web.Request) -> web.Response:
    bridge = _bridge(request)
    device_id = request.match_info["device"]
    known_device(bridge, device_id)
    return json_response(
        {
            "boot": bridge.store.boot,
            "seq": bridge.store.seq,
            "readings": [r.to_json() for r in bridge.store.device_readings(device_id)],
        }
    )


async def point_reading(request: web.Request) -> web.Response:
    bridge = _bridge(request)
    device_id, point_id = request.match_info["device"], request.match_info["point"]
    known_point(bridge, device_id, point_id)
    return json_response(bridge.store.latest(device_id, point_id).to_json())


def parse_time(text: str) -> float:
    """An ISO 8601 time (``Z`` or an offset; naive means UTC) or Unix seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise Problem(400, f"since={text!r} is not an ISO 8601 time or Unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def point_history(request: web.Request) -> web.Response:
    bridge = _bridge(request)
    device_id, point_id = request.match_info["device"], request.match_info["point"]
    known_point(bridge, device_id, point_id)
    unknown = set(request.query) - {"since", "limit"}
    if unknown:
        raise Problem(400, f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    since = parse_time(request.query["since"]) if "since" in request.query else None
    limit = None
    if "limit" in request.query:
        text = request.query["limit"]
        if not text.isdigit() or int(text) < 1:
            raise Problem(400, f"limit={text!r} must be a whole number of at least 1")
        limit = int(text)
    kept = bridge.store.history(device_id, point_id, since, limit)
    return json_response({"readings": [r.to_json() for r in kept]})


async def poll_device(request: web.Request) -> web.Response:
    bridge = _bridge(request)
    device_id = request.match_info["device"]
    known_device(bridge, device_id)
    try:
        polled = await bridge.poll_now(device_id)
    except DeviceTimeout as exc:
        raise Problem(504, str(exc)) from None
    except (LinkError, DriverError) as exc:
        raise Problem(503, f"device {device_id!r} is offline: {exc}") from None
    return json_response(
        {
            "device": device_id,
            "status": bridge.devices[device_id].status,
            "readings": [r.to_json() for r in polled],
        }
    )


def auth_middleware(token: str | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    """With a read token, every route but ``/healthz`` needs ``Authorization: Bearer``."""
    expected = f"Bearer {token}".encode() if token else None

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        # By route, not by path: ``/api/v1/devices/healthz`` is not ``/healthz``.
        if expected is not None and request.match_info.handler is not healthz:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise Problem(
                    401,
                    "this route needs 'Authorization: Bearer <token>' with the read token",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await handler(request)

    return check


def routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/api/v1/devices", list_devices)
    app.router.add_get("/api/v1/devices/{device}", get_device)
    app.router.add_get("/api/v1/readings", readings)
    app.router.add_get("/api/v1/devices/{device}/readings", device_readings)
    app.router.add_get("/api/v1/devices/{device}/points/{point}", point_reading)
    app.router.add_get("/api/v1/devices/{device}/points/{point}/history", point_history)
    app.router.add_post("/api/v1/devices/{device}/poll", poll_device)
    app.router.add_get("/api/v1/stream", stream.handler)


def make_app(bridge: Bridge) -> web.Application:
    """The application, with every route under ``BRIDGE_ROOT_PATH``."""
    settings = bridge.settings
    api = web.Application(
        middlewares=[problems_middleware, auth_middleware(settings.read_token)],
        client_max_size=MAX_BODY,
    )
    api[BRIDGE] = bridge
    routes(api)
    if not settings.root_path:
        return api
    outer = web.Application(middlewares=[problems_middleware], client_max_size=MAX_BODY)
    outer.add_subapp(settings.root_path, api)
    return outer
