"""The routes that act on a device: a poll now, and a write read back; their audit."""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import ValidationError

from bridge.api.auth import TOKEN
from bridge.api.problems import ProblemError
from bridge.api.query import bridge_of, known_device, known_point
from bridge.api.responses import json_response
from bridge.api.schemas import (
    WriteIn,
)
from bridge.logs import fields
from bridge.service import audit, write_failure
from drivers.base import BadValue, DeviceTimeout, DriverError, LinkError

AUDITED: web.RequestKey[bool] = web.RequestKey("audited", bool)

#: request bodies are small JSON documents; anything larger is refused with 413
MAX_BODY = 64 * 1024


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


def audit_refused(request: web.Request, exc: ProblemError | web.HTTPException) -> None:
    """An audit line for a write refused before it reached the device (401, 403, 400...):
    a PUT answered with ``exc`` that the write itself has not audited."""
    if request.method == "PUT" and not request.get(AUDITED):
        token = request.get(TOKEN)
        status = exc.status
        detail = exc.detail if isinstance(exc, ProblemError) else exc.reason
        who = token.name if token else "-"
        audit.info(
            "write by=%s path=%s result=refused %s: %s", who, request.path, status, detail,
            extra=fields(who=who, path=request.path, result=f"refused {status}: {detail}"),
        )  # fmt: skip


def _first_error(error: ValidationError) -> str:
    item = error.errors(include_url=False)[0]
    where = ".".join(str(p) for p in item["loc"])
    return f"{where}: {item['msg']}" if where else item["msg"]
