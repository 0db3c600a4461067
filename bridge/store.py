"""The store: latest reading and bounded history of every point, and the ``seq`` counter.

All methods are plain synchronous calls: the poller updates the store and the hub in one
step without awaiting, so readers on the same loop always see a consistent state.
"""

from __future__ import annotations

import bisect
import uuid
from collections import deque
from collections.abc import Iterable, Sequence

from bridge.readings import BAD, GOOD, STALE, Reading
from drivers.base import DeviceConfig, PointConfig, PointFailure, ReadResult, Value

NEVER_READ = "not read yet"


class _Slot:
    """A point's state: its latest reading and the published readings still kept."""

    __slots__ = ("deadband", "evicted_seq", "history", "latest", "unit")

    def __init__(self, device: str, point: PointConfig, history: int) -> None:
        self.unit = point.unit
        self.deadband = point.deadband
        self.latest = Reading(device, point.id, None, point.unit, BAD, None, 0, NEVER_READ)
        self.history: deque[Reading] = deque(maxlen=history)
        # The seq of the newest reading dropped from history: resuming from before it would
        # lose readings, which must be reported as a gap.
        self.evicted_seq = 0


def _changed(slot: _Slot, value: Value) -> bool:
    old = slot.latest
    if old.quality != GOOD:
        return True
    previous = old.value
    deadband = slot.deadband
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

    def _publish(self, slot: _Slot, reading: Reading) -> None:
        slot.latest = reading
        history = slot.history
        if len(history) == history.maxlen:
            slot.evicted_seq = history[0].seq
        history.append(reading)

    def apply_poll(self, device: str, results: ReadResult, ts: float) -> list[Reading]:
        """Record one poll's results; return the readings to publish (changed ones only).

        A value within its point's deadband of the last published value is not published,
        and the latest reading keeps that published value, but its ``ts`` moves on so that
        readers see the value was confirmed by this poll.
        """
        published: list[Reading] = []
        for point, slot in self._slots[device].items():
            result = results.get(point)
            if result is None:
                result = PointFailure("the driver returned no value")
            old = slot.latest
            if type(result) is PointFailure:
                if old.quality == BAD and old.error == result.error and old.seq:
                    continue
                self.seq += 1
                reading = Reading(device, point, None, slot.unit, BAD, ts, self.seq, result.error)
            elif _changed(slot, result):  # type: ignore[arg-type]
                self.seq += 1
                reading = Reading(device, point, result, slot.unit, GOOD, ts, self.seq)  # type: ignore[arg-type]
            else:
                slot.latest = Reading(device, point, old.value, old.unit, GOOD, ts, old.seq)
                continue
            self._publish(slot, reading)
            published.append(reading)
        return published

    def mark_stale(self, device: str, error: str) -> list[Reading]:
        """The device stopped answering: good readings turn stale, keeping value and ts."""
        published: list[Reading] = []
        for slot in self._slots[device].values():
            old = slot.latest
            if old.quality != GOOD:
                continue
            self.seq += 1
            reading = Reading(
                device, old.point, old.value, old.unit, STALE, old.ts, self.seq, error
            )
            self._publish(slot, reading)
            published.append(reading)
        return published

    def has(self, device: str, point: str | None = None) -> bool:
        """Whether the device (and point) exist."""
        points = self._slots.get(device)
        return points is not None and (point is None or point in points)

    def latest(self, device: str, point: str) -> Reading:
        """The latest reading of one point (KeyError if unknown)."""
        return self._slots[device][point].latest

    def device_readings(self, device: str) -> list[Reading]:
        """Latest readings of one device, in file order."""
        return [slot.latest for slot in self._slots[device].values()]

    def select(
        self, devices: Iterable[str] | None = None, points: Iterable[str] | None = None
    ) -> list[tuple[str, str]]:
        """(device, point) pairs matching the filters: a device id, or ``device/point``.

        With no filters, every point; with both, a point matches either.
        """
        wanted_devices = set(devices or ())
        wanted_points = set(points or ())
        every = not wanted_devices and not wanted_points
        return [
            (device, point)
            for device, slots in self._slots.items()
            for point in slots
            if every or device in wanted_devices or f"{device}/{point}" in wanted_points
        ]

    def history(
        self, device: str, point: str, since: float | None = None, limit: int | None = None
    ) -> list[Reading]:
        """Kept readings of one point, oldest first, with ``ts`` at or after ``since``."""
        kept = list(self._slots[device][point].history)
        if since is not None:
            start = bisect.bisect_left(kept, since, key=lambda r: r.ts or 0.0)
            kept = kept[start:]
        if limit is not None:
            kept = kept[:limit]
        return kept

    def published_since(self, seq: int, pairs: Iterable[tuple[str, str]]) -> list[Reading] | None:
        """Every reading of these points published after ``seq``, in seq order.

        None if some of them are no longer kept (the caller must report a gap).
        """
        found: list[Reading] = []
        for device, point in pairs:
            slot = self._slots[device][point]
            if slot.evicted_seq > seq:
                return None
            kept = slot.history
            start = bisect.bisect_right(kept, seq, key=lambda r: r.seq)
            found.extend(kept[i] for i in range(start, len(kept)))
        found.sort(key=lambda r: r.seq)
        return found

    def oldest_kept_seq(self) -> int:
        """The lowest seq from which every point could still be resumed."""
        return max((s.evicted_seq for d in self._slots.values() for s in d.values()), default=0)
