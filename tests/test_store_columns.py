"""The store's column-at-a-time path gives what the point-by-point path gives.

A poll in which every point stays good is handled a column at a time (the hot path); any
other poll point by point. Property test: the same polls into a store that may take the
hot path and into one that never does; the published readings, their encoded frame, the
latest readings, the history and a resume must be the same, value types included.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import wire
from bridge.readings import PublishedReading
from bridge.store import Store, frame_of
from drivers.base import PointFailure, PointValues
from drivers.modbus.config import ModbusTcpDevice

POINTS = 4


def device() -> ModbusTcpDevice:
    return ModbusTcpDevice.model_validate(
        {"id": "d", "driver": "modbus-tcp", "connection": {"host": "h"},
         "points": [{"id": f"p{i}", "table": "holding", "address": i, "unit": "u" if i else None}
                    for i in range(POINTS)]}
    )  # fmt: skip


def point_by_point(history: int) -> Store:
    store = Store([device()], history)
    store._devices["d"].plain = False  # as with a deadband: never the hot path
    return store


# Values drawn from a few so that polls often repeat some (unchanged points) or all.
value = st.one_of(
    st.sampled_from([0, 1, 2, 2**60, True, False, 1.5, -0.0, 0.0, "on", "off"]),
    st.integers(0, 3),
    st.just(PointFailure("refused")),
)
poll = st.one_of(
    st.lists(value, min_size=POINTS, max_size=POINTS),
    st.lists(st.integers(0, 2), min_size=POINTS, max_size=POINTS),  # all good, same types
)


def same(a: list[PublishedReading], b: list[PublishedReading]) -> bool:
    return a == b and [type(r.value) for r in a] == [type(r.value) for r in b]


@settings(max_examples=300)
@given(size=st.integers(1, 5), polls=st.lists(poll, max_size=25), since=st.integers(0, 60))
def test_the_hot_path_publishes_and_keeps_what_the_slow_one_does(
    size: int, polls: list[list[Any]], since: int
) -> None:
    hot, slow = Store([device()], size), point_by_point(size)
    ids = tuple(f"p{i}" for i in range(POINTS))
    for n, values in enumerate(polls):
        # the hot store gets the poll as a Modbus link gives it: one column
        got = hot.apply_poll("d", PointValues(ids, list(values)), 100.0 + n)
        want = slow.apply_poll("d", {f"p{i}": v for i, v in enumerate(values)}, 100.0 + n)
        assert same(list(got), list(want))
        if want:
            assert frame_of(got) == wire.readings(want)
        if n % 3 == 2:
            assert same(hot.mark_stale("d", "timeout"), slow.mark_stale("d", "timeout"))
    assert hot.seq == slow.seq
    pairs = hot.select()
    assert same([hot.latest(*p) for p in pairs], [slow.latest(*p) for p in pairs])
    for _, point in pairs:
        assert same(hot.history("d", point), slow.history("d", point))
    resumed, expected = hot.published_since(since, pairs), slow.published_since(since, pairs)
    assert (resumed is None) == (expected is None)
    if resumed is not None and expected is not None:
        assert same(resumed, expected)
    assert hot.oldest_kept_seq() == slow.oldest_kept_seq()


def test_a_poll_that_changes_nothing_publishes_nothing_but_confirms_the_readings() -> None:
    store = Store([device()], 10)
    store.apply_poll("d", {f"p{i}": i for i in range(POINTS)}, 1.0)
    assert store.apply_poll("d", {f"p{i}": i for i in range(POINTS)}, 2.0) == []
    assert [r.ts for r in store.device_readings("d")] == [2.0] * POINTS
    assert [r.seq for r in store.device_readings("d")] == [1, 2, 3, 4]
    changed = store.apply_poll("d", {"p0": 0, "p1": 5, "p2": 2, "p3": 6}, 3.0)
    assert [(r.point, r.value, r.seq) for r in changed] == [("p1", 5, 5), ("p3", 6, 6)]
    assert frame_of(changed) == wire.readings(list(changed))


def test_a_column_read_result_is_a_mapping_of_the_points_it_holds() -> None:
    failure = PointFailure("refused")
    result = PointValues(("a", "b", "c"), [1, None, failure])
    assert dict(result) == {"a": 1, "c": failure}
    assert len(result) == 2
    assert "b" not in result
    assert result.get("b") is None
    with pytest.raises(ValueError, match="2 values for 3 points"):
        PointValues(("a", "b", "c"), [1, 2])


def test_a_column_of_another_point_order_is_looked_up_by_point() -> None:
    """A result whose ids are not the device's (a link planned before a reload reordered
    the points) still lands each value on its own point."""
    store = Store([device()], 10)
    ids = tuple(f"p{i}" for i in reversed(range(POINTS)))
    store.apply_poll("d", PointValues(ids, [30, 20, 10, 0]), 1.0)
    assert [(r.point, r.value) for r in store.device_readings("d")] == [
        ("p0", 0),
        ("p1", 10),
        ("p2", 20),
        ("p3", 30),
    ]
