"""The store: latest reading and bounded history of every point, and the ``seq`` counter.

All methods are plain synchronous calls: the poller updates the store and the hub in one
step without awaiting, so readers on the same loop always see a consistent state.

A point's latest reading lives in the fields of its slot and its history in compact
columns (:mod:`bridge.history`); :class:`PublishedReading` objects are made for the readings a
poll publishes and for what readers ask for, never kept.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable, Sequence

from bridge.filter import Filter
from bridge.history import History
from bridge.readings import PublishedReading
from bridge.states import Quality
from drivers.base import DeviceConfig, PointConfig, PointFailure, ReadResult, Value

NEVER_READ = "not read yet"
GOOD, STALE, BAD = Quality.GOOD, Quality.STALE, Quality.BAD
_new = tuple.__new__
NO_VALUE = "the driver returned no value"


class _Slot:
    """A point: its latest reading, field by field, and its kept history."""

    __slots__ = (
        "config", "deadband", "device", "error", "history", "point", "quality", "seq", "ts",
        "unit", "value",
    )  # fmt: skip

    def __init__(self, device: str, point: PointConfig, history: int) -> None:
        self.config = point
        self.device = device
        self.point = point.id
        self.unit = point.unit
        self.deadband = point.deadband
        self.value: Value | None = None
        self.quality = Quality.BAD
        self.ts: float | None = None
        self.seq = 0
        self.error: str | None = NEVER_READ
        self.history = History(history)

    def latest(self) -> PublishedReading:
        return PublishedReading(
            self.device, self.point, self.value, self.unit, self.quality, self.ts, self.seq,
            self.error,
        )  # fmt: skip

    def publish(
        self, value: Value | None, quality: Quality, ts: float, seq: int, error: str | None
    ) -> PublishedReading:
        self.value, self.quality, self.ts, self.seq, self.error = value, quality, ts, seq, error
        self.history.append(value, quality, ts, seq, error)
        # tuple.__new__ directly: the named tuple's own __new__ is a Python function, and
        # this runs for every changed point of every poll
        return _new(
            PublishedReading, (self.device, self.point, value, self.unit, quality, ts, seq, error)
        )

    def changed(self, value: Value) -> bool:
        if self.quality is not GOOD:
            return True
        previous = self.value
        deadband = self.deadband
        if deadband is None:
            return value != previous or type(value) is not type(previous)
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
        self._slots: dict[str, dict[str, _Slot]] = {
            device.id: {p.id: _Slot(device.id, p, history) for p in device.points}
            for device in devices
        }

    def set_devices(self, devices: Sequence[DeviceConfig], history: int) -> None:
        """Take a reloaded device list: a point whose definition is unchanged keeps its slot
        (latest reading, history, seq), a new or redefined point starts unread, and the
        points and devices no longer listed are dropped. ``seq`` and ``boot`` go on."""
        old = self._slots
        self._slots = {}
        for device in devices:
            kept = old.get(device.id, {})
            self._slots[device.id] = {
                p.id: slot if (slot := kept.get(p.id)) is not None and slot.config == p
                else _Slot(device.id, p, history)
                for p in device.points
            }  # fmt: skip

    def apply_poll(self, device: str, results: ReadResult, ts: float) -> list[PublishedReading]:
        """Record one poll's results; return the readings to publish (changed ones only).

        A value within its point's deadband of the last published value is not published,
        and the latest reading keeps that published value, but its ``ts`` moves on so that
        readers see the value was confirmed by this poll.
        """
        published: list[PublishedReading] = []
        for point, slot in self._slots[device].items():
            result = results.get(point)
            if result is None:
                result = PointFailure(NO_VALUE)
            if type(result) is PointFailure:
                if slot.quality == BAD and slot.error == result.error and slot.seq:
                    continue
                self.seq += 1
                published.append(slot.publish(None, BAD, ts, self.seq, result.error))
            elif slot.changed(result):  # type: ignore[arg-type]
                self.seq += 1
                published.append(slot.publish(result, GOOD, ts, self.seq, None))  # type: ignore[arg-type]
            else:
                slot.ts = ts
        return published

    def mark_stale(self, device: str, error: str) -> list[PublishedReading]:
        """The device stopped answering: good readings turn stale, keeping value and ts."""
        published: list[PublishedReading] = []
        for slot in self._slots[device].values():
            if slot.quality != GOOD:
                continue
            self.seq += 1
            assert slot.ts is not None  # a good reading was read
            published.append(slot.publish(slot.value, STALE, slot.ts, self.seq, error))
        return published

    def has(self, device: str, point: str | None = None) -> bool:
        """Whether the device (and point) exist."""
        points = self._slots.get(device)
        return points is not None and (point is None or point in points)

    def latest(self, device: str, point: str) -> PublishedReading:
        """The latest reading of one point (KeyError if unknown)."""
        return self._slots[device][point].latest()

    def device_readings(self, device: str) -> list[PublishedReading]:
        """Latest readings of one device, in file order."""
        return [slot.latest() for slot in self._slots[device].values()]

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
            for device, slots in self._slots.items()
            if wanted.touches(device)
            for point in slots
            if wanted.matches(device, point)
        ]

    def history(
        self, device: str, point: str, since: float | None = None, limit: int | None = None
    ) -> list[PublishedReading]:
        """Kept readings of one point, oldest first, with ``ts`` at or after ``since``."""
        slot = self._slots[device][point]
        kept = slot.history
        start = 0 if since is None else kept.at_or_after(since)
        stop = None if limit is None else start + limit
        return kept.readings(device, point, slot.unit, start, stop)

    def published_since(
        self, seq: int, pairs: Iterable[tuple[str, str]]
    ) -> list[PublishedReading] | None:
        """Every reading of these points published after ``seq``, in seq order.

        None if some of them are no longer kept (the caller must report a gap).
        """
        runs: list[list[PublishedReading]] = []
        for device, point in pairs:
            slot = self._slots[device][point]
            kept = slot.history
            if kept.evicted_seq > seq:
                return None
            start = kept.after_seq(seq)
            if start < len(kept):
                runs.append(kept.readings(device, point, slot.unit, start))
        # each point's run is in seq order already: merge them
        return list(heapq.merge(*runs, key=lambda r: r.seq))

    def oldest_kept_seq(self) -> int:
        """The lowest seq from which every point could still be resumed."""
        return max(
            (s.history.evicted_seq for d in self._slots.values() for s in d.values()), default=0
        )
