"""A device's kept readings: one ring per point, all in a few compact columns per device.

Each point keeps its last N published readings (``BRIDGE_HISTORY``). A device's n points
share preallocated ``array`` columns of N × n cells, a row of n cells for each ring
position: value (numbers and bools in the narrowest of ``H``, ``i``, ``q`` and ``d`` that
holds every value kept so far, so a register takes 2 bytes and a float 8), ts (``d``), seq
(an offset in ``I``, widened to ``q`` after 2^32 publications) and one byte for quality and
the value's kind. Strings, ints beyond 2^53 and other values are kept by position, as are
the errors of stale and bad readings. That is 15 to 21 bytes a numeric sample and no
Python object.

While every poll publishes every point, all the rings advance together and a poll is
written as one row, by slice assignment (:meth:`DeviceHistory.append_row`); once some
point is published alone (:meth:`DeviceHistory.append`), each ring keeps a head and a
count of its own. :class:`PublishedReading` objects are made only when a reader asks, and
both lookups (by seq for a resume, by ts for the history route) are binary searches, so
a read costs in proportion to what it returns.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, cast

from bridge.readings import PublishedReading
from bridge.states import Quality
from drivers.base import Value

QUALITIES = (Quality.GOOD, Quality.STALE, Quality.BAD)
QUALITY_CODE = {q: i for i, q in enumerate(QUALITIES)}

# A cell's code byte is quality + 3 * kind; the kind says how its value is kept.
FLOAT, INT, BOOL, NONE, OBJECT = range(5)
#: the largest int that a float column holds exactly
EXACT_INT = 2**53
#: the value column's types, narrowest first: each holds what the ones before it hold
#: (an int of at most 2^53 included, as ``d`` does)
_WIDENING = ("H", "i", "q", "d")
KIND_OF_TYPE = {float: FLOAT, int: INT, bool: BOOL}


def kind_of(value: Value | None) -> int:
    """How a value is kept: in the float column (FLOAT, INT, BOOL), not at all (NONE), or
    by position (OBJECT)."""
    kind = KIND_OF_TYPE.get(type(value), OBJECT)
    if kind == INT and isinstance(value, int) and not -EXACT_INT <= value <= EXACT_INT:
        return OBJECT
    return NONE if value is None else kind


class DeviceHistory:
    """The kept readings of one device's ``points`` points, ``size`` per point."""

    __slots__ = (
        "_base", "_codes", "_counts", "_errors", "_evicted", "_heads", "_objects", "_row",
        "_rows", "_seqs", "_times", "_values", "points", "size",
    )  # fmt: skip

    def __init__(self, points: int, size: int) -> None:
        self.points = points
        self.size = size
        # The columns are allocated when the first reading is kept (see ``_allocate``).
        self._values: array[Any] = array("H")
        self._times = array("d")
        self._seqs: array[int] = array("I")
        self._codes = array("B")
        self._base = 0  # a kept seq is stored as seq - base (> 0)
        self._objects: dict[int, Value] = {}  # cell -> value not kept in the float column
        self._errors: dict[int, str] = {}  # cell -> error of a stale or bad reading
        # per point, the offset of the newest seq dropped (0: none yet)
        self._evicted: array[int] = array("I")
        # While the rings are aligned: the next row of every ring, and how many are kept.
        self._row = 0
        self._rows = 0
        # Once they are not: each point's own next position and count.
        self._heads: array[int] | None = None
        self._counts: array[int] | None = None

    def _allocate(self, first_seq: int) -> None:
        cells = self.points * self.size
        self._values = array("H", bytes(2 * cells))
        self._times = array("d", bytes(8 * cells))
        self._seqs = array("I", bytes(4 * cells))
        self._codes = array("B", bytes(cells))
        self._evicted = array("I", bytes(4 * self.points))
        self._base = first_seq - 1

    # -- writing ------------------------------------------------------------------------

    def append_row(
        self, values: Sequence[Value], codes: array[int], ts: float, first_seq: int,
        objects_at: Sequence[int] = (), ints: bool = True,
    ) -> bool:  # fmt: skip
        """Keep one good reading of every point, published with seqs ``first_seq`` on in
        point order; False, and nothing kept, if an int is too large for the number
        column (it must be kept point by point, by position). ``codes`` holds each cell's
        code byte (:func:`kind_of` of the value, times 3); ``objects_at`` the points whose
        kind is OBJECT (their float cell is 0); ``ints`` whether any value is an int."""
        if self._heads is not None:
            for point, value in enumerate(values):
                self.append(point, value, Quality.GOOD, ts, first_seq + point, None)
            return True
        if not self._values:
            self._allocate(first_seq)
        # every value but those at ``objects_at`` is a number, as the caller promised
        numbers = cast("list[float]", list(values) if objects_at else values)
        for point in objects_at:
            numbers[point] = 0
        row_values = self._number_row(numbers, ints)
        if row_values is None:
            return False
        n = self.points
        row = self._row
        low, high = row * n, row * n + n
        if self._rows == self.size:
            self._evicted[:] = self._seqs[low:high]
        else:
            self._rows += 1
        self._row = row + 1 if row + 1 < self.size else 0
        # Aligned rings have no errors (a stale or bad reading is appended point by point),
        # but the row may hold values kept by position that this one replaces.
        if self._objects:
            for cell in range(low, high):
                self._objects.pop(cell, None)
        for point in objects_at:
            self._objects[low + point] = values[point]
        self._values[low:high] = row_values
        self._times[low:high] = array("d", (ts,)) * n
        offset = first_seq - self._base
        try:
            self._seqs[low:high] = array(self._seqs.typecode, range(offset, offset + n))
        except OverflowError:
            self._widen_seqs()
            self._seqs[low:high] = array("q", range(offset, offset + n))
        self._codes[low:high] = codes
        return True

    def _number_row(self, numbers: list[float], ints: bool) -> array[Any] | None:
        """The row's numbers in the value column's type, widened as they need; None (and
        the column as it was) if an int among them is beyond what a float holds exactly.
        An int that ``H`` or ``i`` holds is within that, so only a row that does not fit
        the column, or a column already wider, needs looking at each value."""
        while True:
            typecode = self._values.typecode
            if ints and typecode in ("q", "d") and _beyond_exact(numbers):
                return None
            try:
                return array(typecode, numbers)
            except (OverflowError, TypeError):  # a value the column's type cannot hold
                if ints and _beyond_exact(numbers):
                    return None  # kept point by point: no need to widen for it
                self._widen_values()

    def append(
        self, point: int, value: Value | None, quality: Quality, ts: float, seq: int,
        error: str | None,
    ) -> None:  # fmt: skip
        """Keep one published reading of one point (a bad one's value is None)."""
        if not self._values:
            self._allocate(seq)
        heads, counts = self._unaligned()
        n = self.points
        head = heads[point]
        cell = head * n + point
        if counts[point] == self.size:
            self._evicted[point] = self._seqs[cell]
        else:
            counts[point] += 1
        heads[point] = head + 1 if head + 1 < self.size else 0
        kind = kind_of(value)
        number: float = 0
        if kind == OBJECT:
            self._objects[cell] = cast("Value", value)
        else:
            if self._objects:
                self._objects.pop(cell, None)
            number = cast("float", 0 if value is None else value)
        while True:
            try:
                self._values[cell] = number
                break
            except (OverflowError, TypeError):
                self._widen_values()
        self._times[cell] = ts
        try:
            self._seqs[cell] = seq - self._base
        except OverflowError:
            self._widen_seqs()
            self._seqs[cell] = seq - self._base
        self._codes[cell] = QUALITY_CODE[quality] + 3 * kind
        if error is not None:
            self._errors[cell] = error
        elif self._errors:
            self._errors.pop(cell, None)

    def _unaligned(self) -> tuple[array[int], array[int]]:
        if self._heads is None or self._counts is None:
            self._heads = array("I", (self._row,)) * self.points
            self._counts = array("I", (self._rows,)) * self.points
        return self._heads, self._counts

    def _widen_values(self) -> None:
        wider = _WIDENING[_WIDENING.index(self._values.typecode) + 1]
        self._values = array(wider, self._values)

    def _widen_seqs(self) -> None:
        self._seqs = array("q", self._seqs)
        self._evicted = array("q", self._evicted)

    # -- reading ------------------------------------------------------------------------

    def count(self, point: int) -> int:
        """How many readings of this point are kept."""
        return self._rows if self._counts is None else self._counts[point]

    def evicted_seq(self, point: int) -> int:
        """The seq of the newest reading of this point dropped (0 if none was): resuming
        from before it would lose readings."""
        if not self._evicted:
            return 0
        offset = self._evicted[point]
        return offset + self._base if offset else 0

    def newest_evicted_seq(self) -> int:
        """The highest :meth:`evicted_seq` of any point (0 if none was dropped)."""
        offset = max(self._evicted, default=0)
        return offset + self._base if offset else 0

    def _cell(self, point: int) -> Callable[[int], int]:
        """The cell of the k-th oldest kept reading of a point."""
        head = self._row if self._heads is None else self._heads[point]
        first = head - self.count(point)
        size, n = self.size, self.points
        return lambda k: ((first + k) % size) * n + point

    def readings(
        self, point: int, device: str, point_id: str, unit: str | None, start: int = 0,
        stop: int | None = None,
    ) -> list[PublishedReading]:  # fmt: skip
        """Kept readings ``start:stop`` of a point (0 is the oldest kept), oldest first."""
        count = self.count(point)
        stop = count if stop is None else min(stop, count)
        cells = list(map(self._cell(point), range(start, stop)))
        return list(map(self._reading, cells, repeat(device), repeat(point_id), repeat(unit)))

    def _reading(self, cell: int, device: str, point_id: str, unit: str | None) -> PublishedReading:
        kind, quality = divmod(self._codes[cell], 3)
        value: Value | None
        if kind == FLOAT:
            value = float(self._values[cell])
        elif kind == INT:
            value = int(self._values[cell])
        elif kind == BOOL:
            value = self._values[cell] != 0
        elif kind == OBJECT:
            value = self._objects[cell]
        else:
            value = None
        return PublishedReading(
            device, point_id, value, unit, QUALITIES[quality], self._times[cell],
            self._seqs[cell] + self._base, self._errors.get(cell),
        )  # fmt: skip

    def after_seq(self, point: int, seq: int) -> int:
        """The position of the first kept reading of a point published after ``seq``."""
        cell, seqs, base = self._cell(point), self._seqs, self._base
        return bisect.bisect_right(
            range(self.count(point)), seq, key=lambda k: seqs[cell(k)] + base
        )

    def at_or_after(self, point: int, ts: float) -> int:
        """The position of the first kept reading of a point read at or after ``ts``."""
        cell, times = self._cell(point), self._times
        return bisect.bisect_left(range(self.count(point)), ts, key=lambda k: times[cell(k)])

    def copy_point(self, source: DeviceHistory, source_point: int, point: int) -> None:
        """Take another history's readings of one point as this point's (a reload that
        kept the point's definition); this history must have kept nothing of it yet."""
        if not self._values:
            self._allocate(1)  # seqs kept as they are: the copied ones are the oldest
        for reading in source.readings(source_point, "", "", None):
            self.append(point, reading.value, reading.quality, reading.ts or 0.0, reading.seq,
                        reading.error)  # fmt: skip
        evicted = source.evicted_seq(source_point)
        if evicted:
            self._evicted[point] = evicted - self._base


def _beyond_exact(numbers: Sequence[float]) -> bool:
    """Whether an int among the numbers is beyond what a float holds exactly."""
    if max(numbers, default=0) <= EXACT_INT and min(numbers, default=0) >= -EXACT_INT:
        return False  # the common case, in two passes in C
    return any(type(n) is int and not -EXACT_INT <= n <= EXACT_INT for n in numbers)
