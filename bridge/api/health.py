"""Health, readiness, the broker's state and the metrics page."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge.api import metrics
from bridge.api.problems import problem_response
from bridge.api.query import bridge_of
from bridge.api.responses import json_response
from bridge.api.schemas import (
    BrokerOut,
    HealthOut,
    NorthOut,
    OutboxOut,
    ReadyOut,
)
from bridge.readings import iso_time
from bridge.service import Bridge


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
