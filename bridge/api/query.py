"""What a request names: the bridge it is served by, devices, points and query filters.

Shared by the REST handlers and the stream; each check raises a problem for the client.
"""

from __future__ import annotations

from aiohttp import web

from bridge.api.problems import ProblemError
from bridge.service import Bridge

BRIDGE: web.AppKey[Bridge] = web.AppKey("bridge", Bridge)


def bridge_of(request: web.Request) -> Bridge:
    """The bridge this request is served by."""
    return request.app[BRIDGE]


def known_device(bridge: Bridge, device_id: str) -> None:
    if device_id not in bridge.devices:
        raise ProblemError(404, f"no device {device_id!r} (devices: {', '.join(bridge.devices)})")


def known_point(bridge: Bridge, device_id: str, point_id: str) -> None:
    known_device(bridge, device_id)
    if not bridge.store.has(device_id, point_id):
        points = ", ".join(p.id for p in bridge.devices[device_id].config.points)
        raise ProblemError(
            404, f"device {device_id!r} has no point {point_id!r} (points: {points})"
        )


def only_query(request: web.Request, allowed: set[str] | frozenset[str]) -> None:
    """A 400 problem for any query parameter the route does not take."""
    unknown = set(request.query) - allowed
    if unknown:
        raise ProblemError(400, f"unknown query parameter(s): {', '.join(sorted(unknown))}")


def filters(
    bridge: Bridge, request: web.Request, other: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """The repeatable ``device`` and ``point`` query filters, checked against the devices.

    ``point`` is ``device/point``, or a bare point id which then applies to every device
    named by ``device`` (or every device, if none is named). ``other`` names the further
    parameters the route takes; any else is a bad query.
    """
    only_query(request, {"device", "point"} | other)
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
            raise ProblemError(404, f"no point {name!r} on {', '.join(scope)}")
        points.extend(matches)
    if narrowed:
        # A bare point id narrows the named devices to that point; it does not add to them.
        devices = []
    return devices, points
