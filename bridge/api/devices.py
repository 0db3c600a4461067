"""The read routes: devices, latest readings and history."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from aiohttp import web

from bridge.api.health import broker_summary
from bridge.api.problems import ProblemError
from bridge.api.query import bridge_of, filters, known_device, known_point, only_query
from bridge.api.responses import device_summary, json_response, readings_body
from bridge.api.schemas import (
    DeviceDetailOut,
    DevicesOut,
)


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
