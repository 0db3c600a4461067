"""A Python client for device-bridge, for agents (contract §8).

Usage::

    from bridge.client import BridgeClient, Gap, Reading

    async with BridgeClient() as bridge:            # base URL from $SERVICE_URL
        r = await bridge.latest("boiler", "temperature")
        print(r.value, r.unit, r.quality, r.ts)
        await bridge.write("boiler", "setpoint", 65.0)
        async for event in bridge.subscribe(devices=["boiler"]):
            if isinstance(event, Gap):
                ...                                  # some readings were missed: resynchronise
            else:
                print(event.point, event.value)      # reconnects and resumes by itself

The base URL is ``$SERVICE_URL`` unless given, with or without a path
(``http://host:5000`` or ``http://host:5000/resource``); the token is ``$BRIDGE_TOKEN``
unless given, sent as ``Authorization: Bearer <token>``. Results are small frozen
dataclasses (:class:`Reading`, :class:`Device`, :class:`DeviceDetail`). Every failure is a
:class:`BridgeError` carrying the problem's ``status``, ``title``, ``detail`` and ``type``;
:class:`BridgeUnavailable` (``status`` None) means the bridge could not be reached at all.

**Subscribing.** :meth:`BridgeClient.subscribe` is an async iterator over the stream
(``/api/v1/stream``). It yields the latest reading of every matching point first (the
snapshot), then every new reading as the bridge publishes it, in ``seq`` order.

**Resuming.** When the connection drops (network, bridge restart, or the bridge closing it
with 1013 because the caller did not keep up) the iterator reconnects by itself, with
capped, jittered exponential backoff (0.1 s doubling to 10 s, ±20 %; back to 0.1 s after a
connection succeeds), and asks for everything after the last ``seq`` it yielded in the same
``boot``. As long as the bridge still keeps those readings (``BRIDGE_HISTORY`` per point),
the caller sees every reading exactly once, in order, as if nothing had happened.

**Gaps.** When the bridge no longer holds what was missed (the history moved on, or the
bridge restarted and has a new ``boot``), the iterator yields a :class:`Gap` and then the
latest reading of every matching point again (a fresh snapshot). A gap is never hidden:
readings were lost, and anything the caller derived from the sequence of readings (counts,
edges, averages) should be treated as incomplete. The snapshot after it is the state to
resynchronise from; some of its readings may be ones the caller saw before.

Break out of the ``async for`` normally, or wrap the iterator in
:func:`contextlib.aclosing` (or ``async with bridge.subscribe() as stream``), so that its
WebSocket is closed at once; :meth:`BridgeClient.close` closes every open stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import WSMsgType

__all__ = [
    "BadRequest",
    "BridgeClient",
    "BridgeError",
    "BridgeUnavailable",
    "Device",
    "DeviceDetail",
    "Event",
    "Forbidden",
    "Gap",
    "InvalidValue",
    "NotFound",
    "Reading",
    "StatusChange",
    "Subscription",
    "Unauthorized",
    "Value",
]

log = logging.getLogger(__name__)

#: a point's value: what the bridge publishes and what :meth:`BridgeClient.write` takes
Value = bool | int | float | str

#: seconds between WebSocket pings; a dead connection is noticed within 1.5 times this
HEARTBEAT: Final = 20.0
#: handshake answers that retrying cannot change: raised, not retried
PERMANENT: Final = frozenset({400, 401, 403, 404, 405, 410, 413, 414, 422})


# --------------------------------------------------------------------------- results


def _time(text: Any) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(str(text))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Reading:
    """One point's value at one moment (contract §5).

    ``quality`` is ``good`` (read in the last poll), ``stale`` (the device stopped
    answering; the value is the last good one) or ``bad`` (no usable value; ``error`` says
    why). ``ts`` is when the value was read from the device (UTC; None if never read).
    ``seq`` is the bridge's publication counter: it increases by one with every published
    reading, and starts again when the bridge restarts.
    """

    device: str
    point: str
    value: Value | None
    unit: str | None
    quality: str
    ts: datetime | None
    seq: int
    error: str | None = None

    @property
    def good(self) -> bool:
        """Whether the value was read in the device's last poll."""
        return self.quality == "good"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reading:
        return cls(
            device=str(data["device"]),
            point=str(data["point"]),
            value=data.get("value"),
            unit=data.get("unit"),
            quality=str(data["quality"]),
            ts=_time(data.get("ts")),
            seq=int(data["seq"]),
            error=data.get("error"),
        )


@dataclass(frozen=True, slots=True)
class Device:
    """A device as listed: ``status`` is ``starting``, ``online``, ``degraded`` or
    ``offline``; ``points`` are its point ids."""

    id: str
    driver: str
    status: str
    last_success: datetime | None
    last_error: str | None
    points: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Device:
        return cls(
            id=str(data["id"]),
            driver=str(data["driver"]),
            status=str(data["status"]),
            last_success=_time(data.get("last_success")),
            last_error=data.get("last_error"),
            points=tuple(str(p) for p in data["points"]),
        )


@dataclass(frozen=True, slots=True)
class DeviceDetail:
    """One device with its point definitions (as the device file gives them, validated)
    and its poll statistics."""

    id: str
    driver: str
    status: str
    last_success: datetime | None
    last_error: str | None
    interval: float
    timeout: float
    points: tuple[Mapping[str, Any], ...]
    stats: Mapping[str, Any] = field(default_factory=dict)

    @property
    def point_ids(self) -> tuple[str, ...]:
        return tuple(str(p["id"]) for p in self.points)

    def point(self, point_id: str) -> Mapping[str, Any] | None:
        """One point's definition, or None."""
        return next((p for p in self.points if p.get("id") == point_id), None)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeviceDetail:
        return cls(
            id=str(data["id"]),
            driver=str(data["driver"]),
            status=str(data["status"]),
            last_success=_time(data.get("last_success")),
            last_error=data.get("last_error"),
            interval=float(data["interval"]),
            timeout=float(data["timeout"]),
            points=tuple(dict(p) for p in data["points"]),
            stats=dict(data.get("stats") or {}),
        )


@dataclass(frozen=True, slots=True)
class Gap:
    """Readings were missed and cannot be replayed; a fresh snapshot follows.

    ``since`` is the seq the iterator asked to resume after; ``oldest`` the lowest seq the
    bridge could still resume from; ``boot_changed`` is true when the bridge restarted
    (then seqs start again, and ``oldest`` belongs to the new boot).
    """

    since: int
    oldest: int
    boot_changed: bool


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A device's status changed (yielded only with ``subscribe(statuses=True)``)."""

    device: str
    status: str
    error: str | None
    ts: datetime | None


#: what :meth:`BridgeClient.subscribe` yields
Event = Reading | Gap | StatusChange


# --------------------------------------------------------------------------- errors


class BridgeError(Exception):
    """A request the bridge refused or could not serve, from its problem+json answer.

    ``status`` is the HTTP status (None when no answer came); ``title``, ``detail`` and
    ``type`` are the problem's; ``body`` is the whole problem document (some carry more,
    e.g. ``/readyz``'s ``devices``).
    """

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        title: str = "",
        type: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.body: dict[str, Any] = dict(body or {})
        super().__init__(detail)

    def __str__(self) -> str:
        if self.status is None:
            return self.detail
        return f"{self.status} {self.title}: {self.detail}" if self.title else self.detail


class BridgeUnavailable(BridgeError):
    """The bridge could not be reached, or did not answer in time (``status`` is None)."""


class BadRequest(BridgeError):
    """400: a bad query or body."""


class Unauthorized(BridgeError):
    """401: the token is missing or wrong (set ``BRIDGE_TOKEN`` or pass ``token=``)."""


class Forbidden(BridgeError):
    """403: the point is not writable, or writes are disabled on the bridge."""


class NotFound(BridgeError):
    """404: no such device or point (the detail names those there are)."""


class InvalidValue(BridgeError):
    """422: a value of the wrong type, or outside the point's ``min``/``max``."""


_BY_STATUS: dict[int, type[BridgeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    422: InvalidValue,
}


def _problem(status: int, reason: str | None, body: bytes, where: str) -> BridgeError:
    """The error for an answer with an error status, from its problem+json body if any."""
    kind = _BY_STATUS.get(status, BridgeError)
    try:
        problem = json.loads(body)
    except ValueError:
        problem = None
    if isinstance(problem, dict) and isinstance(problem.get("detail"), str):
        return kind(
            problem["detail"],
            status=status,
            title=str(problem.get("title") or reason or ""),
            type=problem.get("type"),
            body=problem,
        )
    text = body.decode("utf-8", "replace").strip()
    detail = f"{where} answered {status} {reason or ''}".rstrip()
    detail += f": {text[:200]}" if text else ""
    detail += " (not a device-bridge problem answer: is the base URL right?)"
    return kind(detail, status=status, title=reason or "", body=None)


# --------------------------------------------------------------------------- the client


Params = list[tuple[str, str]]


class BridgeClient:
    """The bridge's REST API and stream, on aiohttp.

    ``base_url`` defaults to ``$SERVICE_URL`` (with or without a path); ``token`` to
    ``$BRIDGE_TOKEN``. ``timeout`` bounds each REST request and each stream connection
    attempt, in seconds. A ``session`` given is used and left open; otherwise the client
    makes its own and closes it in :meth:`close`. ``reconnect_delay`` and
    ``reconnect_max`` bound the stream's reconnection backoff.
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
    ) -> None:
        base = base_url if base_url is not None else os.environ.get("SERVICE_URL")
        if not base:
            raise ValueError(
                "no bridge URL: pass BridgeClient('http://host:5000') "
                "or set SERVICE_URL (e.g. SERVICE_URL=http://127.0.0.1:5000)"
            )
        parts = urlsplit(base.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"bridge URL {base!r} must be http(s)://host[:port][/path], "
                "e.g. http://127.0.0.1:5000 or http://host:5000/resource"
            )
        #: the base URL, without a trailing slash: every path is joined under it
        self.base_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.token = token if token is not None else os.environ.get("BRIDGE_TOKEN") or None
        self.timeout = timeout
        self.reconnect_delay = reconnect_delay
        self.reconnect_max = reconnect_max
        self._session = session
        self._own_session = session is None
        self._streams: set[aiohttp.ClientWebSocketResponse] = set()
        self.closed = False

    def __repr__(self) -> str:
        return f"BridgeClient({self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close open streams (their iterators end) and the client's own session."""
        self.closed = True
        for ws in list(self._streams):
            await ws.close()
        self._streams.clear()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # ----------------------------------------------------------------------- plumbing

    def url(self, path: str) -> str:
        """The absolute URL of an API path (``api/v1/devices``) under the base URL."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def _http(self) -> aiohttp.ClientSession:
        if self.closed:
            raise BridgeError("this BridgeClient is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)
            )
        return self._session

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def _request(
        self, method: str, path: str, *, params: Params | None = None, body: Any = None
    ) -> Any:
        url = self.url(path)
        where = f"{method} {url}"
        try:
            async with self._http().request(
                method,
                url,
                params=params,
                json=body,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                data = await response.read()
                if response.status >= 400:
                    raise _problem(response.status, response.reason, data, where)
                try:
                    return json.loads(data)
                except ValueError:
                    raise BridgeError(
                        f"{where} answered {response.content_type}, not JSON "
                        f"(is {self.base_url} a device-bridge?)",
                        status=response.status,
                        title="Unexpected answer",
                    ) from None
        except TimeoutError:
            raise BridgeUnavailable(f"{where}: no answer within {self.timeout} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise BridgeUnavailable(f"{where}: cannot reach the bridge: {exc}") from exc

    # ----------------------------------------------------------------------- REST

    async def devices(self) -> list[Device]:
        """Every device, with its status and point ids."""
        body = await self._request("GET", "api/v1/devices")
        return [Device.from_json(d) for d in body["devices"]]

    async def device(self, device: str) -> DeviceDetail:
        """One device, with its point definitions and poll statistics."""
        body = await self._request("GET", f"api/v1/devices/{_segment(device)}")
        return DeviceDetail.from_json(body)

    async def latest(self, device: str, point: str) -> Reading:
        """The latest reading of one point."""
        body = await self._request(
            "GET", f"api/v1/devices/{_segment(device)}/points/{_segment(point)}"
        )
        return Reading.from_json(body)

    async def readings(
        self, devices: Iterable[str] | None = None, points: Iterable[str] | None = None
    ) -> list[Reading]:
        """Latest readings of every point, or of the devices and points named.

        ``points`` are ``device/point``, or bare point ids narrowing ``devices``.
        """
        body = await self._request("GET", "api/v1/readings", params=_filters(devices, points))
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
            params.append(("since", _iso(since) if isinstance(since, datetime) else since))
        if limit is not None:
            params.append(("limit", str(limit)))
        body = await self._request(
            "GET",
            f"api/v1/devices/{_segment(device)}/points/{_segment(point)}/history",
            params=params,
        )
        return [Reading.from_json(r) for r in body["readings"]]

    async def write(self, device: str, point: str, value: Value) -> Reading:
        """Write a value (engineering units) and return the reading the device gives back.

        Needs a write token. Never retried: a :class:`BridgeUnavailable` here means the
        write may or may not have reached the device; read the point to know.
        """
        body = await self._request(
            "PUT",
            f"api/v1/devices/{_segment(device)}/points/{_segment(point)}",
            body={"value": value},
        )
        return Reading.from_json(body)

    async def poll(self, device: str) -> list[Reading]:
        """Poll the device now; its readings right after."""
        body = await self._request("POST", f"api/v1/devices/{_segment(device)}/poll")
        return [Reading.from_json(r) for r in body["readings"]]

    # ----------------------------------------------------------------------- stream

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
        state = _StreamState(
            devices=tuple(_names(devices)),
            points=tuple(_names(points)),
            statuses=statuses,
            last_seq=since,
            boot=boot,
        )
        return Subscription(state, _stream(self, state))

    def _backoff(self, failures: int) -> float:
        delay = min(self.reconnect_max, self.reconnect_delay * 2.0**failures)
        return delay * random.uniform(0.8, 1.2)

    async def _connect(self, state: _StreamState) -> aiohttp.ClientWebSocketResponse | None:
        """A stream connection, or None after a failure worth retrying."""
        params = _filters(state.devices, state.points)
        if state.last_seq is not None:
            params.append(("since", str(state.last_seq)))
            if state.boot is not None:
                params.append(("boot", state.boot))
        url = self.url("api/v1/stream")
        try:
            async with asyncio.timeout(self.timeout):
                ws = await self._http().ws_connect(
                    url,
                    params=params,
                    headers=self._headers(),
                    heartbeat=HEARTBEAT,
                    max_msg_size=0,
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in PERMANENT:
                raise await self._refusal(url, params, exc) from None
            log.info("stream %s refused (%s %s); retrying", url, exc.status, exc.message)
            return None
        except TimeoutError:
            log.info("stream %s: no answer within %s s; retrying", url, self.timeout)
            return None
        except (aiohttp.ClientError, OSError) as exc:
            log.info("stream %s unreachable (%s); retrying", url, exc)
            return None
        self._streams.add(ws)
        return ws

    async def _refusal(
        self, url: str, params: Params, exc: aiohttp.WSServerHandshakeError
    ) -> BridgeError:
        """The problem behind a refused handshake: the same request without the upgrade
        gets the same refusal, with its problem+json body."""
        try:
            async with self._http().get(
                url,
                params=params,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                if response.status == exc.status:
                    return _problem(response.status, response.reason, await response.read(), url)
        except (aiohttp.ClientError, OSError, TimeoutError):
            pass
        return _problem(exc.status, exc.message, b"", f"GET {url} (WebSocket)")


@dataclass(slots=True)
class _StreamState:
    devices: tuple[str, ...]
    points: tuple[str, ...]
    statuses: bool
    last_seq: int | None
    boot: str | None
    connects: int = 0


class Subscription(AsyncIterator[Event]):
    """The iterator :meth:`BridgeClient.subscribe` returns.

    ``boot`` and ``last_seq`` are where it would resume from: save them to resume in a
    later run with ``subscribe(since=last_seq, boot=boot)``. ``connects`` counts the
    connections made so far. ``aclose()`` (or leaving ``async with``) closes the WebSocket.
    """

    def __init__(self, state: _StreamState, events: AsyncGenerator[Event, None]) -> None:
        # The generator must not refer to this object: then dropping the iterator (a
        # ``break`` out of ``async for``) frees the generator at once, and the event
        # loop's finalizer closes it and its WebSocket.
        self._state = state
        self._events = events

    @property
    def boot(self) -> str | None:
        return self._state.boot

    @property
    def last_seq(self) -> int | None:
        return self._state.last_seq

    @property
    def connects(self) -> int:
        return self._state.connects

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _stream(client: BridgeClient, state: _StreamState) -> AsyncGenerator[Event, None]:
    client._http()  # a closed client raises here
    failures = 0
    while not client.closed:
        ws = await client._connect(state)
        if ws is not None:
            try:
                hello_seq = 0
                boot_changed = False
                while True:
                    message = await ws.receive()
                    if message.type is not WSMsgType.TEXT:
                        break
                    frame = _frame(message.data)
                    kind = frame.get("type")
                    if kind == "readings":
                        for item in frame["readings"]:
                            reading = _reading(item)
                            if state.last_seq is not None and reading.seq <= state.last_seq:
                                continue  # already yielded
                            state.last_seq = reading.seq
                            yield reading
                    elif kind == "hello":
                        hello_seq = int(frame["seq"])
                        boot_changed = state.boot is not None and frame["boot"] != state.boot
                        state.boot = str(frame["boot"])
                        state.connects += 1
                        failures = 0
                    elif kind == "snapshot":
                        # The snapshot is the state as of the hello: resume after its seq.
                        latest = sorted((_reading(r) for r in frame["readings"]), key=_seq)
                        state.last_seq = hello_seq
                        for reading in latest:
                            yield reading
                    elif kind == "gap":
                        yield Gap(int(frame["since"]), int(frame["oldest"]), boot_changed)
                    elif kind == "status" and state.statuses:
                        yield StatusChange(
                            device=str(frame["device"]),
                            status=str(frame["status"]),
                            error=frame.get("error"),
                            ts=_time(frame.get("ts")),
                        )
                    elif kind == "error":
                        log.warning("stream: the bridge says: %s", frame.get("detail"))
            finally:
                client._streams.discard(ws)
                await ws.close()
            if client.closed:
                return
            log.info(
                "stream closed (code %s); resuming after seq %s",
                ws.close_code,
                state.last_seq,
            )
        await asyncio.sleep(client._backoff(failures))
        failures += 1


def _frame(data: str) -> dict[str, Any]:
    try:
        frame = json.loads(data)
    except ValueError:
        frame = None
    if not isinstance(frame, dict):
        raise BridgeError(f"the stream sent something that is not a frame: {data[:200]!r}")
    return frame


def _reading(item: Any) -> Reading:
    try:
        return Reading.from_json(item)
    except (KeyError, TypeError, ValueError) as exc:
        raise BridgeError(f"the stream sent a malformed reading {item!r}: {exc}") from None


def _seq(reading: Reading) -> int:
    return reading.seq


def _segment(name: str) -> str:
    return quote(name, safe="")


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _filters(devices: Iterable[str] | None, points: Iterable[str] | None) -> Params:
    params: Params = [("device", d) for d in _names(devices)]
    params.extend(("point", p) for p in _names(points))
    return params


def _names(names: Iterable[str] | None) -> Sequence[str]:
    if names is None:
        return ()
    if isinstance(names, str):
        return (names,)  # a lone name, not its letters
    return tuple(names)
