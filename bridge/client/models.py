"""What the client returns: readings, devices, and the stream's events, as frozen dataclasses.

Each is built from the bridge's JSON with ``from_json``; times are UTC datetimes. The wire
shapes are the ones README's "API" section documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.states import Quality

#: a point's value: what the bridge publishes and what :meth:`BridgeClient.write` takes
Value = bool | int | float | str


def parse_time(text: Any) -> datetime | None:
    """An ISO 8601 time from the bridge as an aware UTC datetime (naive means UTC)."""
    if text is None:
        return None
    moment = datetime.fromisoformat(str(text))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_time(moment: datetime) -> str:
    """A datetime as the bridge's query parameters take it (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Reading:
    """One point's value at one moment, as the client receives it.

    ``quality`` is ``good`` (read in the last poll), ``stale`` (the device stopped
    answering; the value is the last good one) or ``bad`` (no usable value; ``error`` says
    why): the values of :class:`bridge.states.Quality`, kept as text so that a client
    still reads a bridge that adds one. ``ts`` is when the value was read from the device
    (UTC; None if never read).
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
        return self.quality == Quality.GOOD

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reading:
        return cls(
            device=str(data["device"]),
            point=str(data["point"]),
            value=data.get("value"),
            unit=data.get("unit"),
            quality=str(data["quality"]),
            ts=parse_time(data.get("ts")),
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
        return cls(**_device_fields(data), points=tuple(str(p) for p in data["points"]))


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
            **_device_fields(data),
            interval=float(data["interval"]),
            timeout=float(data["timeout"]),
            points=tuple(dict(p) for p in data["points"]),
            stats=dict(data.get("stats") or {}),
        )


def _device_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """What a listed device and a device's detail both carry."""
    return {
        "id": str(data["id"]),
        "driver": str(data["driver"]),
        "status": str(data["status"]),
        "last_success": parse_time(data.get("last_success")),
        "last_error": data.get("last_error"),
    }


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
