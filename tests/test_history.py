"""The compact history ring: every kept reading comes back as it was published.

A property test against a plain list model: values of every type (narrow and wide ints,
float32-exact and not, booleans, strings, mixed), qualities, errors, wrap-around, and
the two lookups (after a seq, at or after a ts).
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from bridge.history import History
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
published = st.tuples(
    values, st.sampled_from([Quality.GOOD, Quality.STALE, Quality.BAD]), st.integers(1, 3)
)


def same(a: PublishedReading, b: PublishedReading) -> bool:
    return a == b and type(a.value) is type(b.value)


@given(size=st.integers(1, 8), steps=st.lists(published, max_size=40), seed=st.data())
def test_the_ring_keeps_the_last_readings_exactly(
    size: int, steps: list[tuple[object, str, int]], seed: st.DataObject
) -> None:
    history = History(size)
    model: list[PublishedReading] = []
    seq, ts = 10, 1000.0
    for value, quality, step in steps:
        seq += step
        ts += step / 10
        kept_value = None if quality == Quality.BAD else value
        error = None if quality == Quality.GOOD else f"failed {seq}"
        history.append(kept_value, quality, ts, seq, error)  # type: ignore[arg-type]
        model.append(PublishedReading("d", "p", kept_value, "u", quality, ts, seq, error))  # type: ignore[arg-type]
    kept = model[-size:]
    assert len(history) == len(kept)
    assert all(map(same, history.readings("d", "p", "u"), kept))
    evicted = model[: -size or None][-1:] if len(model) > size else []
    assert history.evicted_seq == (evicted[0].seq if evicted else 0)
    if kept:
        after = seed.draw(st.integers(kept[0].seq - 2, kept[-1].seq + 1))
        start = history.after_seq(after)
        assert history.readings("d", "p", "u", start) == [r for r in kept if r.seq > after]
        since = seed.draw(st.floats(kept[0].ts - 1, kept[-1].ts + 1))  # type: ignore[operator]
        start = history.at_or_after(since)
        assert history.readings("d", "p", "u", start) == [r for r in kept if r.ts >= since]  # type: ignore[operator]


def test_numbers_take_the_narrowest_column_that_holds_them() -> None:
    history = History(4)
    history.append(7, Quality.GOOD, 1.0, 1, None)
    assert history._values.data.typecode == "H"  # type: ignore[union-attr]
    history.append(70000, Quality.GOOD, 2.0, 2, None)
    assert history._values.data.typecode == "i"  # type: ignore[union-attr]
    floats = History(4)
    floats.append(0.5, Quality.GOOD, 1.0, 1, None)
    assert floats._values.data.typecode == "f"  # type: ignore[union-attr]
    floats.append(0.1, Quality.GOOD, 2.0, 2, None)  # not exact in float32
    assert floats._values.data.typecode == "d"  # type: ignore[union-attr]
    floats.append(math.inf, Quality.GOOD, 3.0, 3, None)
    assert [r.value for r in floats.readings("d", "p", None)] == [0.5, 0.1, math.inf]


def test_seq_beyond_four_bytes_of_offset_widens_the_column() -> None:
    history = History(3)
    history.append(1, Quality.GOOD, 1.0, 5, None)
    history.append(2, Quality.GOOD, 2.0, 5 + 2**33, None)
    assert [r.seq for r in history.readings("d", "p", None)] == [5, 5 + 2**33]
