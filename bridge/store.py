"""The store: latest reading and bounded history of every point, and the ``seq`` counter.

All methods are plain synchronous calls: the poller updates the store and the hub in one
step without awaiting, so readers on the same loop always see a consistent state.

A device's latest readings live in columns (one list per field, a slot per point, in file
order) and its history in :class:`bridge.history.DeviceHistory`. A poll in which every
point stays good is handled a column at a time: which values changed is found by
comparing the whole list with the last one, and the readings it publishes are recorded
without a Python object each (:class:`PollReadings` makes them, and the poll's frame,
when someone asks). Any other poll (a failure, a deadband, a value of another type than
before) goes point by point.
"""

from __future__ import annotations

import heapq
import uuid
from array import array
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from itertools import compress, count, repeat
from operator import ne
from typing import Any, cast, overload

from bridge import wire
from bridge.filter import Filter
from bridge.history import EXACT_INT, INT, KIND_OF_TYPE, OBJECT, DeviceHistory, kind_of
from bridge.readings import PublishedReading
from bridge.states import Quality
from drivers.base import DeviceConfig, PointConfig, PointFailure, ReadResult, Value

NEVER_READ = "not read yet"
GOOD, STALE, BAD = Quality.GOOD, Quality.STALE, Quality.BAD
NO_VALUE = "the driver returned no value"
# tuple.__new__ directly: the named tuple's own __new__ is a Python function
_reading = partial(tuple.__new__, PublishedReading)


class PollReadings(Sequence[PublishedReading]):
    """The good readings one poll published, kept as columns until someone asks.

    A sequence of :class:`PublishedReading` (made on first access), and :meth:`frame`,
    the stream's ``readings`` frame of them, encoded from the columns directly.
    """

    __slots__ = ("_device", "_frame", "_made", "_points", "_ts", "first_seq", "values")

    def __init__(
        self, device: _Device, points: Sequence[int] | None, values: list[Value], ts: float,
        first_seq: int,
    ) -> None:  # fmt: skip
        self._device = device
        self._points = points  # None: every point, in order
        self.values = values  # the published values, in seq order
        self._ts = ts
        self.first_seq = first_seq
        self._made: list[PublishedReading] | None = None
        self._frame: bytes | None = None

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
                self._points, self.values, self._ts, self.first_seq
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


class _RowPlan:
    """What a good poll whose values have these types needs, worked out once per device."""

    __slots__ = ("codes", "has_ints", "objects_at")

    def __init__(self, kinds: Sequence[int]) -> None:
        self.codes = array("B", (3 * kind for kind in kinds))  # quality good is 0
        self.objects_at = tuple(i for i, kind in enumerate(kinds) if kind == OBJECT)
        self.has_ints = INT in kinds


class _Device:
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
        self.row_plans: dict[tuple[type, ...], _RowPlan | None] = {}
        self.frames = wire.GoodReadings(self.id, self.ids, self.units)

    def latest(self, i: int) -> PublishedReading:
        return PublishedReading(
            self.id, self.ids[i], self.values[i], self.units[i], self.qualities[i], self.ts[i],
            self.seqs[i], self.errors[i],
        )  # fmt: skip

    def row_plan(self, types: tuple[type, ...]) -> _RowPlan | None:
        """The plan for good values of these types; None if one is not a plain value."""
        if types not in self.row_plans:
            kinds = [KIND_OF_TYPE.get(t, OBJECT) for t in types]
            plain = all(t in KIND_OF_TYPE or t is str for t in types)
            self.row_plans[types] = _RowPlan(kinds) if plain else None
        return self.row_plans[types]

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


class Store:
    """Latest readings, history and sequence numbers of one bridge process."""

    def __init__(self, devices: Sequence[DeviceConfig], history: int) -> None:
        self.boot = uuid.uuid4().hex[:16]
        self.seq = 0
        self._devices = {device.id: _Device(device, history) for device in devices}

    def set_devices(self, devices: Sequence[DeviceConfig], history: int) -> None:
        """Take a reloaded device list: a point whose definition is unchanged keeps its slot
        (latest reading, history, seq), a new or redefined point starts unread, and the
        points and devices no longer listed are dropped. ``seq`` and ``boot`` go on."""
        old = self._devices
        self._devices = {}
        for device in devices:
            kept = old.get(device.id)
            if (
                kept is not None
                and kept.configs == tuple(device.points)
                and kept.history.size == history
            ):
                self._devices[device.id] = kept
                continue
            new = self._devices[device.id] = _Device(device, history)
            if kept is not None:
                _carry_over(kept, new)

    def apply_poll(self, device: str, results: ReadResult, ts: float) -> Sequence[PublishedReading]:
        """Record one poll's results; return the readings to publish (changed ones only).

        A value within its point's deadband of the last published value is not published,
        and the latest reading keeps that published value, but its ``ts`` moves on so that
        readers see the value was confirmed by this poll.
        """
        state = self._devices[device]
        values: list[Any] = list(map(results.get, state.ids))
        types = tuple(map(type, values))
        if state.plain and (plan := state.row_plan(types)) is not None:
            if types == state.types:
                return self._good_poll(state, values, plan, ts)
            if GOOD not in state.qualities:  # the first poll, or every point back at once
                state.qualities = [GOOD] * len(values)
                state.errors = [None] * len(values)
                state.types = types
                return self._good_poll(state, values, plan, ts, every=True)
        return self._poll_by_point(state, values, ts)

    def _good_poll(
        self, state: _Device, values: list[Value], plan: _RowPlan, ts: float,
        every: bool = False,
    ) -> PollReadings:  # fmt: skip
        """Every point good now, with values of the types of ``state.types``; good before
        too (then the changed ones are published), or ``every`` point is published."""
        n = len(values)
        state.ts = [ts] * n
        if every:
            changed: list[int] = list(range(n))
        elif values == state.values:
            return PollReadings(state, (), [], ts, self.seq + 1)
        else:
            changed = list(compress(range(n), map(ne, values, state.values)))
        first = self.seq + 1
        self.seq += len(changed)
        state.values = cast("list[Value | None]", values)  # read only from now on
        if len(changed) == n and not (plan.has_ints and _beyond_exact(values, plan)):
            state.seqs = list(range(first, first + n))
            state.history.append_row(values, plan.codes, ts, first, plan.objects_at)
            return PollReadings(state, None, values, ts, first)
        published = [values[i] for i in changed]
        seqs, history = state.seqs, state.history
        for seq, i in enumerate(changed, first):
            seqs[i] = seq
            history.append(i, values[i], GOOD, ts, seq, None)
        return PollReadings(state, changed, published, ts, first)

    def _poll_by_point(
        self, state: _Device, values: list[Value | PointFailure | None], ts: float
    ) -> list[PublishedReading]:
        published: list[PublishedReading] = []
        state.values = list(state.values)  # a poll's readings may hold the old list
        for i, result in enumerate(values):
            if result is None:
                result = PointFailure(NO_VALUE)
            if isinstance(result, PointFailure):
                error = result.error
                if state.qualities[i] == BAD and state.errors[i] == error and state.seqs[i]:
                    continue
                self.seq += 1
                published.append(state.publish(i, None, BAD, ts, self.seq, error))
            elif state.changed(i, result):
                self.seq += 1
                published.append(state.publish(i, result, GOOD, ts, self.seq, None))
            else:
                state.ts[i] = ts
        all_good = all(q is GOOD for q in state.qualities)
        state.types = tuple(map(type, state.values)) if all_good else ()
        return published

    def mark_stale(self, device: str, error: str) -> list[PublishedReading]:
        """The device stopped answering: good readings turn stale, keeping value and ts."""
        state = self._devices[device]
        published: list[PublishedReading] = []
        for i, quality in enumerate(state.qualities):
            if quality != GOOD:
                continue
            self.seq += 1
            ts = state.ts[i]
            assert ts is not None  # a good reading was read
            published.append(state.publish(i, state.values[i], STALE, ts, self.seq, error))
        if published:
            state.types = ()
        return published

    def has(self, device: str, point: str | None = None) -> bool:
        """Whether the device (and point) exist."""
        state = self._devices.get(device)
        return state is not None and (point is None or point in state.index)

    def latest(self, device: str, point: str) -> PublishedReading:
        """The latest reading of one point (KeyError if unknown)."""
        state = self._devices[device]
        return state.latest(state.index[point])

    def device_readings(self, device: str) -> list[PublishedReading]:
        """Latest readings of one device, in file order."""
        state = self._devices[device]
        return [state.latest(i) for i in range(len(state.ids))]

    def select(
        self, devices: Iterable[str] | None = None, points: Iterable[str] | None = None
    ) -> list[tuple[str, str]]:
        """(device, point) pairs matching the filters: a device id, or ``device/point``.

        With no filters, every point; with both, a point matches either.
        """
        return self.matching(Filter(devices or (), points or ()))

    def matching(self, wanted: Filter) -> list[tuple[str, str]]:
        """(device, point) pairs the filter wants, in file order."""
        return [
            (device, point)
            for device, state in self._devices.items()
            if wanted.touches(device)
            for point in state.ids
            if wanted.matches(device, point)
        ]

    def history(
        self, device: str, point: str, since: float | None = None, limit: int | None = None
    ) -> list[PublishedReading]:
        """Kept readings of one point, oldest first, with ``ts`` at or after ``since``."""
        state = self._devices[device]
        i = state.index[point]
        kept = state.history
        start = 0 if since is None else kept.at_or_after(i, since)
        stop = None if limit is None else start + limit
        return kept.readings(i, device, point, state.units[i], start, stop)

    def published_since(
        self, seq: int, pairs: Iterable[tuple[str, str]]
    ) -> list[PublishedReading] | None:
        """Every reading of these points published after ``seq``, in seq order.

        None if some of them are no longer kept (the caller must report a gap).
        """
        runs: list[list[PublishedReading]] = []
        for device, point in pairs:
            state = self._devices[device]
            i = state.index[point]
            kept = state.history
            if kept.evicted_seq(i) > seq:
                return None
            start = kept.after_seq(i, seq)
            if start < kept.count(i):
                runs.append(kept.readings(i, device, point, state.units[i], start))
        # each point's run is in seq order already: merge them
        return list(heapq.merge(*runs, key=lambda r: r.seq))

    def oldest_kept_seq(self) -> int:
        """The lowest seq from which every point could still be resumed."""
        return max(
            (state.history.newest_evicted_seq() for state in self._devices.values()), default=0
        )


def _beyond_exact(values: Sequence[Value], plan: _RowPlan) -> bool:
    """Whether some int is too large for the float column (then it is kept by point)."""
    numbers = cast("list[float]", values)
    if plan.objects_at:
        numbers = [v for i, v in enumerate(numbers) if i not in plan.objects_at]
    return max(numbers, default=0) > EXACT_INT or min(numbers, default=0) < -EXACT_INT


def _carry_over(old: _Device, new: _Device) -> None:
    """A reloaded device: the points defined as before keep their readings and history."""
    for i, config in enumerate(new.configs):
        j = old.index.get(config.id)
        if j is None or old.configs[j] != config:
            continue
        new.values[i], new.qualities[i], new.ts[i] = old.values[j], old.qualities[j], old.ts[j]
        new.seqs[i], new.errors[i] = old.seqs[j], old.errors[j]
        new.history.copy_point(old.history, j, i)
    if all(q is GOOD for q in new.qualities):
        new.types = tuple(map(type, new.values))


__all__ = ["NEVER_READ", "PollReadings", "Store", "frame_of", "kind_of"]
