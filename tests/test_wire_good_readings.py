"""The column encoder of a poll's good readings gives the bytes of the reading encoder.

``GoodReadings`` builds a ``readings`` frame from bytes templates (the hot path);
``wire.readings`` from reading objects. Property test: any names and units, any mix of
value types a poll can give (ints beyond 64 bits, floats that are not finite, strings
with commas, quotes and ``%``), every point or any subset of them.
"""

from __future__ import annotations

import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import wire
from bridge.readings import PublishedReading
from bridge.states import Quality
from drivers.base import Value

# any character a str encodes to UTF-8 (not a lone surrogate)
letter = st.characters(codec="utf-8")
name = st.text(letter, max_size=8)
unit = st.none() | name
value: st.SearchStrategy[Value] = st.one_of(
    st.integers(0, 65535),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e16, -0.0, 5e-324, 1.5]),
    st.booleans(),
    st.text(letter, max_size=6),
    st.sampled_from(["on,off", '"%d"', "%", ",", ""]),
)


@st.composite
def polls(draw: st.DrawFn) -> tuple[list[str], list[str | None], list[list[Value]], list[int]]:
    size = draw(st.integers(1, 6))
    points = draw(st.lists(name, min_size=size, max_size=size))
    units = draw(st.lists(unit, min_size=size, max_size=size))
    register: st.SearchStrategy[Value] = st.integers(0, 65535)
    all_ints = st.lists(register, min_size=size, max_size=size)
    any_values = st.lists(value, min_size=size, max_size=size)
    rows = draw(st.lists(all_ints | any_values, min_size=1, max_size=4))
    chosen = draw(st.lists(st.integers(0, size - 1), unique=True).map(sorted))
    return points, units, rows, chosen


def expected(
    device: str, points: list[str], units: list[str | None], values: list[Value],
    chosen: list[int], ts: float, first: int,
) -> bytes:  # fmt: skip
    return wire.readings(
        PublishedReading(device, points[i], values[i], units[i], Quality.GOOD, ts, seq)
        for seq, i in enumerate(chosen, first)
    )


@settings(max_examples=400)
@given(case=polls(), device=st.sampled_from(["boiler", "d-1", "x_%"]))
def test_a_frame_from_templates_is_the_frame_of_its_readings(
    case: tuple[list[str], list[str | None], list[list[Value]], list[int]], device: str
) -> None:
    points, units, rows, chosen = case
    frames = wire.GoodReadings(device, points, units)
    every = list(range(len(points)))
    for n, values in enumerate(rows):
        types = tuple(map(type, values))
        ts, first = 1_800_000_000.125 + n, 1 + 10 * n
        got = frames.encode(None, values, ts, first, types)
        assert got == expected(device, points, units, values, every, ts, first)
        subset = [values[i] for i in chosen]
        if subset:
            got = frames.encode(chosen, subset, ts, first, types)
            assert got == expected(device, points, units, values, chosen, ts, first)


def test_floats_that_are_not_finite_are_null_as_in_every_other_frame() -> None:
    frames = wire.GoodReadings("d", ["a", "b"], [None, "%"])
    values: list[Value] = [math.nan, math.inf]
    frame = orjson.loads(frames.encode(None, values, 1.0, 7, (float, float)))
    assert [(r["value"], r["unit"], r["seq"]) for r in frame["readings"]] == [
        (None, None, 7),
        (None, "%", 8),
    ]
