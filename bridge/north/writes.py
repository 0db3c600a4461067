"""Writes that arrive over MQTT, through the bridge's one checked, audited write path.

``<prefix>/<device>/<point>/set`` with ``{"value": V, "id": "..."}`` is written exactly as
``PUT /api/v1/devices/{device}/points/{point}`` would (``Bridge.write``: checked, sent once,
read back, one audit line), and answered on ``.../set/result`` with the same status codes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bridge.service import UnknownDevice, write_failure

if TYPE_CHECKING:
    from bridge.service import Bridge

#: the audit log's name for writes that came over MQTT
WHO = "mqtt"


async def write_from_mqtt(
    bridge: Bridge, device: str, point: str, payload: bytes
) -> dict[str, Any]:
    """Do one write request; the answer to publish on ``.../set/result``."""
    request_id: Any = None
    try:
        body = json.loads(payload)
        if not isinstance(body, dict) or "value" not in body:
            raise ValueError
        request_id = body.get("id")
    except ValueError:
        return _refused(request_id, 400, 'the payload must be {"value": ..., "id": "..."}')
    return {"id": request_id, **await write_value(bridge, device, point, body["value"])}


async def write_value(bridge: Bridge, device: str, point: str, value: Any) -> dict[str, Any]:
    """Write one value as the REST API would: ``status`` and ``reading``, or ``detail``."""
    try:
        runtime = bridge.device(device)
    except UnknownDevice:
        return {"status": 404, "detail": f"no device {device!r}"}
    config = runtime.config.point(point)
    if config is None:
        return {"status": 404, "detail": f"device {device!r} has no point {point!r}"}
    if not config.writable:
        return {"status": 403, "detail": f"point {device}/{point} is not writable"}
    try:
        reading = await bridge.write(device, point, value, WHO)
    except Exception as exc:
        failure = write_failure(exc, device)
        if failure is None:
            raise
        return {"status": failure[0], "detail": failure[1]}
    return {"status": 200, "reading": reading.to_json()}


def _refused(request_id: Any, status: int, detail: str) -> dict[str, Any]:
    return {"id": request_id, "status": status, "detail": detail}
