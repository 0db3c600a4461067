"""The client itself: :class:`BridgeClient`, the REST calls, and subscribing to the stream."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import aiohttp

from bridge.client.closing import AsyncClosing
from bridge.client.endpoint import Endpoint, Params, filters, names, segment
from bridge.client.frames import ResumePoint
from bridge.client.models import Device, DeviceDetail, Reading, Value, iso_time
from bridge.client.subscription import Subscription


class BridgeClient(AsyncClosing):
    """The bridge's REST API and stream, on aiohttp.

    ``base_url`` defaults to ``$SERVICE_URL`` (with or without a path); ``token`` to
    ``$BRIDGE_TOKEN``. ``timeout`` bounds each REST request and each stream connection
    attempt, in seconds. A ``session`` given is used and left open; otherwise the client
    makes its own and closes it in :meth:`close`. ``reconnect_delay`` and
    ``reconnect_max`` bound the stream's reconnection backoff. ``ca_file`` (default
    ``$BRIDGE_CA_FILE``) holds the CA certificates to check an ``https`` bridge against.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        reconnect_delay: float = 0.1,
        reconnect_max: float = 10.0,
        ca_file: str | None = None,
    ) -> None:
        self._endpoint = Endpoint(base_url, token, timeout, session, ca_file)
        self.reconnect_delay = reconnect_delay
        self.reconnect_max = reconnect_max

    @property
    def base_url(self) -> str:
        """The base URL, without a trailing slash: every path is joined under it."""
        return self._endpoint.base_url

    @property
    def token(self) -> str | None:
        return self._endpoint.token

    @property
    def timeout(self) -> float:
        return self._endpoint.timeout

    @property
    def closed(self) -> bool:
        return self._endpoint.closed

    def __repr__(self) -> str:
        return f"BridgeClient({self.base_url!r})"

    async def close(self) -> None:
        """Close open streams (their iterators end) and the client's own session."""
        await self._endpoint.close()

    aclose = close

    def url(self, path: str) -> str:
        """The absolute URL of an API path (``api/v1/devices``) under the base URL."""
        return self._endpoint.url(path)

    async def devices(self) -> list[Device]:
        """Every device, with its status and point ids."""
        body = await self._endpoint.request("GET", "api/v1/devices")
        return [Device.from_json(d) for d in body["devices"]]

    async def device(self, device: str) -> DeviceDetail:
        """One device, with its point definitions and poll statistics."""
        body = await self._endpoint.request("GET", f"api/v1/devices/{segment(device)}")
        return DeviceDetail.from_json(body)

    async def latest(self, device: str, point: str) -> Reading:
        """The latest reading of one point."""
        body = await self._endpoint.request("GET", _point_path(device, point))
        return Reading.from_json(body)

    async def readings(
        self, devices: Iterable[str] | None = None, points: Iterable[str] | None = None
    ) -> list[Reading]:
        """Latest readings of every point, or of the devices and points named.

        ``points`` are ``device/point``, or bare point ids narrowing ``devices``.
        """
        body = await self._endpoint.request(
            "GET", "api/v1/readings", params=filters(devices, points)
        )
        return [Reading.from_json(r) for r in body["readings"]]

    async def history(
        self,
        device: str,
        point: str,
        since: datetime | str | None = None,
        limit: int | None = None,
    ) -> list[Reading]:
        """Kept readings of one point, oldest first: from ``since`` (a datetime, naive
        meaning UTC, or ISO 8601 text), at most ``limit`` of them."""
        params: Params = []
        if since is not None:
            params.append(("since", iso_time(since) if isinstance(since, datetime) else since))
        if limit is not None:
            params.append(("limit", str(limit)))
        path = f"{_point_path(device, point)}/history"
        body = await self._endpoint.request("GET", path, params=params)
        return [Reading.from_json(r) for r in body["readings"]]

    async def write(self, device: str, point: str, value: Value) -> Reading:
        """Write a value (engineering units) and return the reading the device gives back.

        Needs a write token. Never retried: a :class:`BridgeUnavailable` here means the
        write may or may not have reached the device; read the point to know.
        """
        body = await self._endpoint.request(
            "PUT", _point_path(device, point), body={"value": value}
        )
        return Reading.from_json(body)

    async def poll(self, device: str) -> list[Reading]:
        """Poll the device now; its readings right after."""
        body = await self._endpoint.request("POST", f"api/v1/devices/{segment(device)}/poll")
        return [Reading.from_json(r) for r in body["readings"]]

    def subscribe(
        self,
        devices: Iterable[str] | None = None,
        points: Iterable[str] | None = None,
        *,
        since: int | None = None,
        boot: str | None = None,
        statuses: bool = False,
    ) -> Subscription:
        """Readings as they are published, resuming by itself across disconnections.

        Yields a snapshot's readings first, then live readings in ``seq`` order; a
        :class:`Gap` when readings were lost, followed by a fresh snapshot; and with
        ``statuses=True`` also :class:`StatusChange` events. ``since`` (with the ``boot``
        it belongs to) starts from a seq saved earlier instead of a snapshot, e.g. from a
        previous run's :attr:`Subscription.last_seq` and :attr:`Subscription.boot`.
        """
        state = ResumePoint(
            devices=tuple(names(devices)),
            points=tuple(names(points)),
            statuses=statuses,
            last_seq=since,
            boot=boot,
        )
        return Subscription(self._endpoint, state, self.reconnect_delay, self.reconnect_max)


def _point_path(device: str, point: str) -> str:
    return f"api/v1/devices/{segment(device)}/points/{segment(point)}"
