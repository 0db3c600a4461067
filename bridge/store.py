"""The store: latest reading and bounded history of every point, and the ``seq`` counter.

All methods are plain synchronous calls: the poller updates the store and the hub in one
step without awaiting, so readers on the same loop always see a consistent state.

A device's latest readings live in columns and its history in compact arrays
(:mod:`bridge.device_state`, :mod:`bridge.history`). A poll in which every point stays
good is handled a column at a time: which values changed is found by comparing the whole
list with the last one, and the readings it publishes are kept as columns until someone
asks (``PollReadings``). Any other poll (a failure, a deadband, a value of another type
than before) goes point by point.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable, Sequence
from itertools import compress
from operator import eq, ne
from typing import Any, cast

from bridge.device_state import NEVER_READ, DeviceState, PollReadings, RowPlan, frame_of
from bridge.filter import Filter
from bridge.readings import PublishedReading
from bridge.states import Quality
from drivers.base import DeviceConfig, PointFailure, PointValues, ReadResult, Value

GOOD, STALE, BAD = Quality.GOOD, Quality.STALE, Quality.BAD
NO_VALUE = "the driver returned no value"


class Store:
    """Latest readings, history and sequence numbers of one bridge process."""

    def __init__(self, devices: Sequence[DeviceConfig], history: int) -> None:
        self.boot = uuid.uuid4().hex[:16]
        self.seq = 0
        self._devices = {device.id: DeviceState(device, history) for device in devices}

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
            new = self._devices[device.id] = DeviceState(device, history)
            if kept is not None:
                _carry_over(kept, new)

    def apply_poll(self, device: str, results: ReadResult, ts: float) -> Sequence[PublishedReading]:
        """Record one poll's results; return the readings to publish (changed ones only).

        A value within its point's deadband of the last published value is not published,
        and the latest reading keeps that published value, but its ``ts`` moves on so that
        readers see the value was confirmed by this poll.
        """
        state = self._devices[device]
        values: list[Any]
        if isinstance(results, PointValues) and results.ids == state.ids:
            values = cast("list[Any]", results.column)
        else:
            values = list(map(results.get, state.ids))
        types = tuple(map(type, values))
        if state.plain and (plan := state.row_plan(types)) is not None:
            if types == state.types:
                return self._good_poll(state, values, plan, ts)
            if GOOD not in state.qualities:  # the first poll, or every point back at once
                return self._good_poll(state, values, plan, ts, every=types)
        return self._poll_by_point(state, values, ts)

    def _good_poll(
        self, state: DeviceState, values: list[Value], plan: RowPlan, ts: float,
        every: tuple[type, ...] | None = None,
    ) -> PollReadings:  # fmt: skip
        """Every point good now: good before too, with values of the types of
        ``state.types`` (the changed ones are published), or none good before, and then
        ``every`` point is published, its values of these types."""
        n = len(values)
        state.ts = [ts] * n
        changed: list[int] | None = None  # None: every point
        if every is not None:
            state.qualities, state.errors, state.types = [GOOD] * n, [None] * n, every
        elif values == state.values:
            return PollReadings(state, (), [], ts, self.seq + 1)
        elif any(map(eq, values, state.values)):  # not every value changed
            changed = list(compress(range(n), map(ne, values, state.values)))
        first = self.seq + 1
        self.seq += n if changed is None else len(changed)
        state.values = cast("list[Value | None]", values)  # read only from now on
        if changed is None:
            if state.history.append_row(
                values, plan.codes, ts, first, plan.objects_at, plan.has_ints
            ):
                state.seqs = list(range(first, first + n))
                return PollReadings(state, None, values, ts, first)
            changed = list(range(n))
        published = [values[i] for i in changed]
        seqs, history = state.seqs, state.history
        for seq, i in enumerate(changed, first):
            seqs[i] = seq
            history.append(i, values[i], GOOD, ts, seq, None)
        return PollReadings(state, changed, published, ts, first)

    def _poll_by_point(
        self, state: DeviceState, values: list[Value | PointFailure | None], ts: float
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


def _carry_over(old: DeviceState, new: DeviceState) -> None:
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


__all__ = ["NEVER_READ", "PollReadings", "Store", "frame_of"]
