"""A point's kept readings as a ring of compact columns: no Python object per sample.

Each point keeps its last N published readings (``BRIDGE_HISTORY``) in preallocated
``array`` columns: value, ts, seq and quality, written at a cursor that wraps around.
A numeric value takes the narrowest type that holds it exactly (``H``, ``h``, ``i``, ``q`` for
integers, ``f`` then ``d`` for floats, ``b`` for booleans), widening the column when a
value does not fit; strings, and values of mixed types, are kept as objects. ``seq`` is
kept as an offset from the first one (4 bytes, widened after 2^32 publications). Errors
(of stale and bad readings only) are kept by position. :class:`PublishedReading` objects are made
only when a reader asks, and both lookups (by seq for a resume, by ts for the history
route) are binary searches, so a read costs in proportion to what it returns.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable
from typing import Any

from bridge.readings import PublishedReading
from bridge.states import Quality
from drivers.base import Value

QUALITIES = (Quality.GOOD, Quality.STALE, Quality.BAD)
_QUALITY_CODE = {q: i for i, q in enumerate(QUALITIES)}
_BAD = _QUALITY_CODE[Quality.BAD]

#: the column types a value of each Python type moves through as it needs more room
_WIDENING: dict[type, tuple[str, ...]] = {
    bool: ("b",),
    int: ("H", "h", "i", "q"),  # a register's uint16 first: most Modbus points are one
    float: ("f", "d"),
}


class _Values:
    """The value column: a typed array while every value fits one, else a list."""

    __slots__ = ("data", "kind", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.kind: type | None = None  # the Python type of every value, None when mixed
        self.data: array[Any] | list[Value | None] | None = None

    def set(self, index: int, value: Value) -> None:
        kind = self.kind
        if type(value) is kind:  # the usual case: a value of the column's type
            data = self.data
            try:
                data[index] = value  # type: ignore[index]
            except OverflowError:
                self._widen(index, value)
                return
            if kind is float and data[index] != value and value == value:  # type: ignore[index]
                self._widen(index, value)  # a float32 column cannot hold this one exactly
            return
        self._set_other(index, value)

    def _set_other(self, index: int, value: Value) -> None:
        """The first value, or one of another type than the column's so far."""
        kind = type(value)
        data = self.data
        if data is None and kind in _WIDENING:
            self.kind = kind
            code = _WIDENING[kind][0]
            self.data = array(code, bytes(array(code).itemsize * self.size))
            self.set(index, value)
            return
        if data is None:
            data = self.data = [None] * self.size
        elif type(data) is array:
            data = self._to_list()
        data[index] = value

    def get(self, index: int) -> Value | None:
        data = self.data
        if data is None:
            return None
        value: Value | None = data[index]
        return bool(value) if self.kind is bool else value

    def _widen(self, index: int, value: Value) -> None:
        data = self.data
        assert isinstance(data, array)
        assert self.kind is not None
        codes = _WIDENING[self.kind]
        for code in codes[codes.index(data.typecode) + 1 :]:
            try:
                wider = array(code, data)  # the values kept must fit too
                wider[index] = value
            except OverflowError:
                continue
            self.data = wider
            return
        self._to_list()[index] = value

    def _to_list(self) -> list[Value | None]:
        data = self.data
        assert isinstance(data, array)
        kind = self.kind
        values: list[Value | None] = [kind(v) if kind is bool else v for v in data]
        self.data, self.kind = values, None
        return values


class History:
    """The last ``size`` published readings of one point, oldest first."""

    __slots__ = (
        "_errors", "_head", "_qualities", "_seq_base", "_seqs", "_times", "_values",
        "count", "evicted_seq", "size",
    )  # fmt: skip

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        self._head = 0  # where the next reading goes
        # The seq of the newest reading dropped: resuming from before it would lose readings.
        self.evicted_seq = 0
        self._values = _Values(size)
        self._times = array("d", bytes(8 * size))
        self._seqs: array[int] = array("I", bytes(4 * size))
        self._seq_base = 0
        self._qualities = array("B", bytes(size))
        self._errors: dict[int, str] = {}

    def __len__(self) -> int:
        return self.count

    def append(
        self, value: Value | None, quality: Quality, ts: float, seq: int, error: str | None
    ) -> None:
        """Keep one published reading (a bad one's value is None and is not stored)."""
        at = self._head
        if self.count == self.size:
            self.evicted_seq = self._seq_at(at)
        else:
            if self.count == 0:
                self._seq_base = seq
            self.count += 1
        self._head = at + 1 if at + 1 < self.size else 0
        if value is not None:
            self._values.set(at, value)
        self._times[at] = ts
        try:
            self._seqs[at] = seq - self._seq_base
        except OverflowError:
            self._seqs = array("q", self._seqs)
            self._seqs[at] = seq - self._seq_base
        self._qualities[at] = _QUALITY_CODE[quality]
        if error is not None:
            self._errors[at] = error
        elif self._errors:
            self._errors.pop(at, None)

    def readings(
        self, device: str, point: str, unit: str | None, start: int = 0, stop: int | None = None
    ) -> list[PublishedReading]:
        """Kept readings ``start:stop`` (0 is the oldest kept), as PublishedReading objects."""
        stop = self.count if stop is None else min(stop, self.count)
        first = self._head - self.count
        size = self.size
        found = []
        for k in range(start, stop):
            at = (first + k) % size
            quality = self._qualities[at]
            found.append(
                PublishedReading(
                    device,
                    point,
                    None if quality == _BAD else self._values.get(at),
                    unit,
                    QUALITIES[quality],
                    self._times[at],
                    self._seq_at(at),
                    self._errors.get(at),
                )
            )
        return found

    def after_seq(self, seq: int) -> int:
        """The position of the first kept reading published after ``seq``."""
        return self._search(seq, self._seq_at, bisect.bisect_right)

    def at_or_after(self, ts: float) -> int:
        """The position of the first kept reading read at or after ``ts``."""
        times = self._times
        return self._search(ts, times.__getitem__, bisect.bisect_left)

    def _seq_at(self, at: int) -> int:
        return self._seqs[at] + self._seq_base

    def _search(
        self, target: float, column: Callable[[int], float],
        search: Callable[..., int],
    ) -> int:  # fmt: skip
        first = self._head - self.count
        size = self.size
        return search(range(self.count), target, key=lambda k: column((first + k) % size))
