"""The contract between the bridge and a driver family.

A *driver* is registered under the entry-point group ``device_bridge.drivers`` as a class
that the bridge instantiates once, with no arguments. It validates its own kind of device
entry (``device_model``), says which devices share a link (``link_key``) and opens one
:class:`Link` per link. Both are generic over that device model (``Driver[MyDevice]``,
``Link[MyDevice]``): the bridge hands a driver and its links only devices its
``device_model`` validated. A link owns one connection (a TCP socket, a serial port) and is used
by exactly one poller task, one request at a time: it never needs its own locking.

Drivers are thin: they do not retry, sleep or keep time. Every transport or protocol failure
becomes one of the :class:`DriverError` subclasses; the poller decides what follows.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import countOf
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Value = float | int | bool | str
"""A decoded point value, after scale and offset."""

Identifier = Annotated[str, Field(pattern=r"^[a-z0-9_-]+$", min_length=1, max_length=64)]


class DriverError(Exception):
    """A device or its link failed. The message is shown to users as the error."""


class LinkError(DriverError):
    """The link itself is down (connection refused or lost, port gone); it must be reopened."""


class DeviceTimeout(DriverError):
    """The device did not answer within its timeout."""


class DeviceError(DriverError):
    """The device answered, but not with anything usable (a malformed or refused request)."""


class BadValue(ValueError):
    """A value given for a write cannot be represented by the point (type, range, encoding)."""


@dataclass(frozen=True, slots=True)
class PointFailure:
    """This point could not be read in this poll; the rest of the device may be fine."""

    error: str


ReadResult = Mapping[str, Value | PointFailure]
"""What one poll of a device gives: point id to value or failure, for every point."""


class PointValues(Mapping[str, Value | PointFailure]):
    """A read result as one column: each point's value or failure, in the device's order.

    What a driver that reads a device whole returns (the Modbus links do): ``ids`` are the
    device's point ids in file order, ``column`` holds each one's value or failure by
    position, None where the poll gave nothing. The store takes the column as it is, where
    any other mapping is looked up point by point; as a mapping it holds the points that
    are not None.
    """

    __slots__ = ("_index", "column", "ids")

    def __init__(self, ids: tuple[str, ...], column: list[Value | PointFailure | None]) -> None:
        if len(ids) != len(column):
            raise ValueError(f"{len(column)} values for {len(ids)} points")
        self.ids = ids
        self.column = column
        self._index: dict[str, int] | None = None

    def __getitem__(self, point: str) -> Value | PointFailure:
        if self._index is None:
            self._index = {point_id: i for i, point_id in enumerate(self.ids)}
        value = self.column[self._index[point]]
        if value is None:
            raise KeyError(point)
        return value

    def __iter__(self) -> Iterator[str]:
        return (
            point for point, value in zip(self.ids, self.column, strict=True) if value is not None
        )

    def __len__(self) -> int:
        return len(self.column) - countOf(self.column, None)


def failed_points(result: ReadResult) -> int:
    """How many points of a read result are failures."""
    values = result.column if isinstance(result, PointValues) else result.values()
    return countOf(map(type, values), PointFailure)


class PointConfig(BaseModel):
    """Fields every point has, whatever its driver."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    unit: str | None = None
    deadband: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    writable: bool = False


class DeviceConfig(BaseModel):
    """Fields every device entry has, whatever its driver. Drivers subclass it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    driver: str
    interval: float = Field(default=1.0, gt=0, le=86400, allow_inf_nan=False)
    timeout: float = Field(default=1.0, gt=0, le=600, allow_inf_nan=False)
    backoff_max: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    points: Sequence[PointConfig] = Field(min_length=1)

    def point(self, point_id: str) -> PointConfig | None:
        """The point with this id, or None."""
        return next((p for p in self.points if p.id == point_id), None)


def check_number(point_id: str, value: Value, low: float | None, high: float | None) -> float | int:
    """The value, if it is a finite number (not a bool) within ``low``..``high``.

    Raises BadValue with a message for the user otherwise; every driver's writes use it.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadValue(f"point {point_id!r} takes a number, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadValue(f"point {point_id!r} takes a finite number, not {value!r}")
    if low is not None and value < low:
        raise BadValue(f"{value!r} is below the minimum {low:g} of point {point_id!r}")
    if high is not None and value > high:
        raise BadValue(f"{value!r} is above the maximum {high:g} of point {point_id!r}")
    return value


EntryPlace = tuple[int | str, ...]
"""A place inside one device entry, e.g. ``("points", 3, "address")``."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request on a link and what came back, as a traffic viewer shows it.

    ``request`` names what was asked for people (``read holding 0..8``, ``query 'SI'``);
    ``sent`` and ``received`` are the bytes on the wire (``received`` everything that
    arrived for it, noise included); ``started`` is Unix time, ``duration`` seconds;
    ``error`` is why it failed (a timeout, a bad CRC, an exception code, garbage), or None.
    """

    device: str
    request: str
    sent: bytes
    received: bytes
    started: float
    duration: float
    error: str | None = None


@dataclass(slots=True)
class Wire:
    """The bytes of one exchange as they went out and came back, filled in by a link's
    transport only while its traffic is watched (see :class:`Exchange`)."""

    sent: bytes = b""
    received: bytes = b""
    #: bytes that had arrived before the request while nothing was asked, dropped before
    #: it was sent (on a bus: a reply after its timeout, another master, noise) ...
    unrequested: bytes = b""
    #: ... and when the last of them arrived (Unix time)
    unrequested_at: float = 0.0


class Tap(Protocol):
    """Where a link reports its exchanges while someone watches its traffic.

    A link's ``tap`` is None unless a viewer is attached; a link checks that once per
    exchange and copies or formats nothing otherwise. ``record`` is a plain call: it
    must not block or raise.
    """

    def record(self, exchange: Exchange) -> None: ...


DeviceT = TypeVar("DeviceT", bound=DeviceConfig)
"""The device model of one driver family."""


class Link(ABC, Generic[DeviceT]):
    """One open connection shared by the devices on it; used by one task, one call at a time.

    ``tap``, set by the bridge while someone watches this link's traffic, gets every
    request and its answer (see :class:`Tap`); links that can, report to it.
    """

    tap: Tap | None = None

    @abstractmethod
    async def open(self) -> None:
        """Open the connection; raise :class:`LinkError` if it cannot be opened."""

    @abstractmethod
    async def close(self) -> None:
        """Close the connection; never raises."""

    @property
    @abstractmethod
    def is_open(self) -> bool:
        """Whether the connection is usable now (it may have been lost since ``open``)."""

    @abstractmethod
    async def read(self, device: DeviceT) -> ReadResult:
        """Read every point of the device once, each request bounded by ``device.timeout``.

        A failure of the whole device raises a :class:`DriverError` at the first request that
        fails, so a dead device costs at most one timeout; a failure of single points is
        returned as :class:`PointFailure` values.
        """

    def counters(self, device_id: str) -> Mapping[str, int]:
        """Driver-specific counts for one device (e.g. lines skipped), shown with its stats."""
        return {}

    async def write(self, device: DeviceT, point_id: str, value: Value) -> None:
        """Write one point's value to the device (raises :class:`BadValue` or DriverError)."""
        raise DeviceError(f"driver {device.driver!r} cannot write")


class Driver(ABC, Generic[DeviceT]):
    """A driver family, registered under the entry-point group ``device_bridge.drivers``."""

    name: ClassVar[str]
    device_model: type[DeviceT]
    """The pydantic model of this family's device entries (set on the class)."""

    @abstractmethod
    def link_key(self, device: DeviceT) -> str:
        """A name for the link the device is on; devices with equal keys share one link."""

    def check_link(self, devices: Sequence[DeviceT]) -> list[str]:
        """Problems with putting these devices on one link (e.g. serial settings differ)."""
        return []

    def entry_problems(self, entry: Mapping[str, Any]) -> list[tuple[EntryPlace, str]]:
        """Mistakes across the points of a device entry as written (e.g. points that
        overlap), found even while other parts of the entry are invalid, each with its
        place inside the entry."""
        return []

    def entry_warnings(self, entry: Mapping[str, Any]) -> list[tuple[EntryPlace, str]]:
        """Things in a device entry as written (before validation) that are valid but
        probably not what was meant, each with its place inside the entry."""
        return []

    @abstractmethod
    def open_link(self, key: str, devices: Sequence[DeviceT]) -> Link[DeviceT]:
        """Create (not yet open) the link for these devices."""

    def check_write(self, device: DeviceT, point_id: str, value: Value) -> None:
        """Raise :class:`BadValue` if the point cannot take the value; nothing is sent.

        The default accepts every value; the link's ``write`` has the last word.
        """
        return None

    def describe(self, device: DeviceT) -> list[str]:
        """Lines for ``device-bridge check``: what one poll of this device sends."""
        return [f"reads {len(device.points)} point(s)"]
