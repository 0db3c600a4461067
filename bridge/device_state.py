"""One device in the store: its latest readings as columns, its history, and what a poll
published.

:class:`DeviceState` holds a device's points' latest readings, one list per field in file
order, beside its :class:`~bridge.history.DeviceHistory`; :class:`PollReadings` is what a
poll handled a column at a time published, made into readings and a frame only when asked.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from functools import partial
from itertools import count, repeat
from typing import overload

from bridge import wire
from bridge.history import INT, KIND_OF_TYPE, OBJECT, DeviceHistory
from bridge.readings import PublishedReading
from bridge.states import Quality
from drivers.base import DeviceConfig, PointConfig, Value

NEVER_READ = "not read yet"
GOOD, BAD = Quality.GOOD, Quality.BAD

# tuple.__new__ directly: the named tuple's own __new__ is a Python function
_reading = partial(tuple.__new__, PublishedReading)


class PollReadings(Sequence[PublishedReading]):
    """The good readings one poll published, kept as columns until someone asks.

    A sequence of :class:`PublishedReading` (made on first access), and :meth:`frame`,
    the stream's ``readings`` frame of them, encoded from the columns directly.
    """

    __slots__ = (
        "_device", "_frame", "_made", "_points", "_ts", "_types", "first_seq", "values",
    )  # fmt: skip

    def __init__(
        self, device: DeviceState, points: Sequence[int] | None, values: list[Value], ts: float,
        first_seq: int,
    ) -> None:  # fmt: skip
        self._device = device
        self._points = points  # None: every point, in order
        self.values = values  # the published values, in seq order
        self._ts = ts
        self.first_seq = first_seq
        self._made: list[PublishedReading] | None = None
        self._frame: bytes | None = None
        self._types = device.types  # of every point's value, all good now

    def _readings(self) -> list[PublishedReading]:
        if self._made is None:
            device, points = self._device, self._points
            ids, units = device.ids, device.units
            if points is not None:
                ids = tuple(ids[i] for i in points)
                units = tuple(units[i] for i in points)
            self._made = list(
                map(_reading, zip(
                    repeat(device.id), ids, self.values, units, repeat(GOOD), repeat(self._ts),
                    count(self.first_seq), repeat(None),
                ))
            )  # fmt: skip
        return self._made

    def frame(self) -> bytes:
        """The ``readings`` frame of these readings (:func:`bridge.wire.readings`)."""
        if self._frame is None:
            self._frame = self._device.frames.encode(
                self._points, self.values, self._ts, self.first_seq, self._types
            )
        return self._frame

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> PublishedReading: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PublishedReading]: ...

    def __getitem__(self, index: int | slice) -> PublishedReading | Sequence[PublishedReading]:
        return self._readings()[index]

    def __iter__(self) -> Iterator[PublishedReading]:
        return iter(self._readings())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self._readings() == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"PollReadings({self._readings()!r})"


def frame_of(readings: Sequence[PublishedReading]) -> bytes:
    """The ``readings`` frame of what a store call returned, encoded once."""
    if isinstance(readings, PollReadings):
        return readings.frame()
    return wire.readings(readings)


class RowPlan:
    """What a good poll whose values have these types needs, worked out once per device."""

    __slots__ = ("codes", "has_ints", "objects_at")

    def __init__(self, kinds: Sequence[int]) -> None:
        self.codes = array("B", (3 * kind for kind in kinds))  # quality good is 0
        self.objects_at = tuple(i for i, kind in enumerate(kinds) if kind == OBJECT)
        self.has_ints = INT in kinds


class DeviceState:
    """One device's points: their definitions, latest readings (columns) and history."""

    __slots__ = (
        "configs", "deadbands", "errors", "frames", "history", "id", "ids", "index",
        "plain", "qualities", "row_plans", "seqs", "ts", "types", "units", "values",
    )  # fmt: skip

    def __init__(self, device: DeviceConfig, history: int) -> None:
        points: Sequence[PointConfig] = device.points
        n = len(points)
        self.id = device.id
        self.configs = tuple(points)
        self.ids = tuple(p.id for p in points)
        self.units = tuple(p.unit for p in points)
        self.index = {p.id: i for i, p in enumerate(points)}
        self.deadbands = tuple(p.deadband for p in points)
        #: no point has a deadband: a change is any difference
        self.plain = all(d is None for d in self.deadbands)
        self.values: list[Value | None] = [None] * n
        self.types: tuple[type, ...] = ()  # the types of ``values`` while all are good
        self.qualities: list[Quality] = [BAD] * n
        self.ts: list[float | None] = [None] * n
        self.seqs: list[int] = [0] * n
        self.errors: list[str | None] = [NEVER_READ] * n
        self.history = DeviceHistory(n, history)
        self.row_plans: dict[tuple[type, ...], RowPlan | None] = {}
        self.frames = wire.GoodReadings(self.id, self.ids, self.units)

    def latest(self, i: int) -> PublishedReading:
        return PublishedReading(
            self.id, self.ids[i], self.values[i], self.units[i], self.qualities[i], self.ts[i],
            self.seqs[i], self.errors[i],
        )  # fmt: skip

    def row_plan(self, types: tuple[type, ...]) -> RowPlan | None:
        """The plan for good values of these types; None if one is not a plain value."""
        try:  # one lookup: the types' tuple is hashed afresh each time
            return self.row_plans[types]
        except KeyError:
            kinds = [KIND_OF_TYPE.get(t, OBJECT) for t in types]
            plain = all(t in KIND_OF_TYPE or t is str for t in types)
            plan = self.row_plans[types] = RowPlan(kinds) if plain else None
            return plan

    def publish(
        self, i: int, value: Value | None, quality: Quality, ts: float, seq: int,
        error: str | None,
    ) -> PublishedReading:  # fmt: skip
        self.values[i], self.qualities[i], self.ts[i] = value, quality, ts
        self.seqs[i], self.errors[i] = seq, error
        self.history.append(i, value, quality, ts, seq, error)
        return _reading((self.id, self.ids[i], value, self.units[i], quality, ts, seq, error))

    def changed(self, i: int, value: Value) -> bool:
        if self.qualities[i] is not GOOD:
            return True
        previous = self.values[i]
        deadband = self.deadbands[i]
        if (
            deadband is not None
            and isinstance(value, int | float)
            and isinstance(previous, int | float)
            and not isinstance(value, bool)
            and not isinstance(previous, bool)
        ):
            return abs(value - previous) > deadband
        return value != previous or type(value) is not type(previous)
