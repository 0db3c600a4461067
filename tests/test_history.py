"""The compact history of a device: every kept reading comes back as it was published.

A property test against a plain list per point: several points, polls that publish every
point (a row) or some of them (one by one), values of every type (ints within and beyond
the float column's exact range, floats, booleans, strings), qualities, errors,
wrap-around, the two lookups (after a seq, at or after a ts) and a reload's copy.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.history import DeviceHistory, kind_of
from bridge.readings import PublishedReading
from bridge.states import Quality

values = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-40000, 40000),
    st.floats(allow_nan=False, width=32),
    st.floats(allow_nan=False),
    st.text(max_size=5),
)
POINTS = 3
# a poll: every point good (a row), or some points with their own quality
row = st.lists(values, min_size=POINTS, max_size=POINTS).map(lambda vs: ("row", vs))
some = st.lists(
    st.tuples(st.integers(0, POINTS - 1), values, st.sampled_from(list(Quality))),
    min_size=1,
    max_size=POINTS,
).map(lambda changes: ("some", changes))
#: (poll, step): a poll is ("row", values) or ("some", [(point, value, quality)])
Poll = tuple[tuple[str, Any], int]
polls = st.lists(st.tuples(st.one_of(row, some), st.integers(1, 3)), max_size=30)


def same(a: PublishedReading, b: PublishedReading) -> bool:
    return a == b and type(a.value) is type(b.value)


def record(history: DeviceHistory, steps: list[Poll]) -> list[list[PublishedReading]]:
    """Apply the polls to the history and to a list per point; return the lists."""
    model: list[list[PublishedReading]] = [[] for _ in range(POINTS)]
    seq, ts = 10, 1000.0
    for (kind, poll), step in steps:
        ts += step / 10
        if kind == "row":
            first = seq + 1
            codes = array("B", (3 * kind_of(v) for v in poll))
            # as the store gives them: the strings are kept by position, any int is checked
            objects_at = [i for i, v in enumerate(poll) if isinstance(v, str)]
            ints = any(type(v) is int for v in poll)
            if not history.append_row(poll, codes, ts, first, objects_at, ints):
                for i, v in enumerate(poll):  # a big int: the store keeps it point by point
                    history.append(i, v, Quality.GOOD, ts, first + i, None)
            for i, v in enumerate(poll):
                model[i].append(PublishedReading("d", f"p{i}", v, "u", Quality.GOOD, ts, first + i))
            seq += len(poll)
            continue
        for point, value, quality in poll:
            seq += step
            kept = None if quality == Quality.BAD else value
            error = None if quality == Quality.GOOD else f"failed {seq}"
            history.append(point, kept, quality, ts, seq, error)
            model[point].append(
                PublishedReading("d", f"p{point}", kept, "u", quality, ts, seq, error)
            )
    return model


@given(size=st.integers(1, 6), steps=polls, seed=st.data())
def test_every_ring_keeps_its_points_last_readings_exactly(
    size: int, steps: list[Poll], seed: st.DataObject
) -> None:
    history = DeviceHistory(POINTS, size)
    model = record(history, steps)
    for point in range(POINTS):
        kept = model[point][-size:]
        got = history.readings(point, "d", f"p{point}", "u")
        assert history.count(point) == len(kept)
        assert len(got) == len(kept)
        assert all(map(same, got, kept))
        evicted = model[point][:-size][-1:] if len(model[point]) > size else []
        assert history.evicted_seq(point) == (evicted[0].seq if evicted else 0)
        if kept:
            after = seed.draw(st.integers(kept[0].seq - 2, kept[-1].seq + 1))
            start = history.after_seq(point, after)
            assert history.readings(point, "d", f"p{point}", "u", start) == [
                r for r in kept if r.seq > after
            ]
            assert kept[0].ts is not None
            assert kept[-1].ts is not None
            since = seed.draw(st.floats(kept[0].ts - 1, kept[-1].ts + 1))
            start = history.at_or_after(point, since)
            assert history.readings(point, "d", f"p{point}", "u", start) == [
                r for r in kept if r.ts is not None and r.ts >= since
            ]
    newest = [history.evicted_seq(p) for p in range(POINTS)]
    assert history.newest_evicted_seq() == max(newest)


@given(size=st.integers(1, 6), steps=polls)
def test_a_copied_point_keeps_its_readings_and_what_it_lost(size: int, steps: list[Poll]) -> None:
    source = DeviceHistory(POINTS, size)
    record(source, steps)
    copy = DeviceHistory(2, size)
    copy.copy_point(source, 2, 0)
    assert copy.readings(0, "d", "p2", "u") == source.readings(2, "d", "p2", "u")
    assert copy.evicted_seq(0) == source.evicted_seq(2)
    assert copy.count(1) == 0


def values_typecode(history: DeviceHistory) -> str:
    """The value column's typecode, read afresh (mypy would keep ``history._values.typecode``
    narrowed to the literal of an earlier assert across the appends that widen it)."""
    return history._values.typecode


def test_values_take_the_narrowest_column_that_holds_them() -> None:
    history = DeviceHistory(2, 100)
    history.append_row([1, True], array("B", [3, 6]), 1.0, 1)
    columns = (history._values, history._times, history._seqs, history._codes)
    assert sum(c.itemsize * len(c) for c in columns) == 15 * 2 * 100  # a register: 15 bytes
    history.append(0, 70000, Quality.GOOD, 2.0, 3, None)
    assert values_typecode(history) == "i"
    history.append(1, -(2**40), Quality.GOOD, 3.0, 4, None)
    assert values_typecode(history) == "q"
    history.append_row([2.5, 7], array("B", [0, 3]), 4.0, 5)
    assert values_typecode(history) == "d"
    kept = [r.value for p in range(2) for r in history.readings(p, "d", "p", None)]
    assert kept == [1, 70000, 2.5, True, -(2**40), 7]
    assert list(map(type, kept)) == [int, int, float, bool, int, int]


def test_a_row_with_an_int_beyond_a_floats_precision_is_refused_whole() -> None:
    history = DeviceHistory(2, 4)
    assert history.append_row([1, 2], array("B", [3, 3]), 1.0, 1)
    huge = 2**53 + 1  # a float column would keep 2**53
    assert not history.append_row([huge, 3], array("B", [3, 3]), 2.0, 3)
    assert [history.count(p) for p in range(2)] == [1, 1]  # nothing of it was kept
    history.append(0, huge, Quality.GOOD, 2.0, 3, None)
    assert [r.value for r in history.readings(0, "d", "p", None)] == [1, huge]
    assert values_typecode(history) == "H"  # kept by position: the registers stay 2 bytes


def test_seq_beyond_four_bytes_of_offset_widens_the_column() -> None:
    history = DeviceHistory(1, 3)
    history.append(0, 1, Quality.GOOD, 1.0, 5, None)
    history.append(0, 2, Quality.GOOD, 2.0, 5 + 2**33, None)
    history.append_row([3], array("B", [3]), 3.0, 6 + 2**33)
    assert [r.seq for r in history.readings(0, "d", "p", None)] == [5, 5 + 2**33, 6 + 2**33]


def test_infinities_and_negative_zero_come_back_as_they_went_in() -> None:
    history = DeviceHistory(3, 2)
    history.append_row([math.inf, -0.0, -math.inf], array("B", [0, 0, 0]), 1.0, 1)
    got = [r.value for p in range(3) for r in history.readings(p, "d", "p", None)]
    assert got == [math.inf, 0.0, -math.inf]
    zero = got[1]
    assert isinstance(zero, float)
    assert math.copysign(1, zero) == -1
