"""The API's JSON responses: one encoder for models and for hot-path bodies."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from bridge import wire
from bridge.api.schemas import (
    DeviceOut,
)
from bridge.readings import PublishedReading, iso_time
from bridge.service import Bridge


def json_response(
    body: BaseModel | dict[str, Any], status: int = 200, exclude: set[str] | None = None
) -> web.Response:
    """A JSON response: one of the API's models (see :mod:`bridge.api.schemas`), or a body
    of that shape built directly where a route is on a hot path (readings)."""
    # dict first: isinstance of a pydantic model's class goes through ABCMeta in Python
    document = body if isinstance(body, dict) else body.model_dump(mode="json", exclude=exclude)
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
