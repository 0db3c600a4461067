"""The readings' ``ts`` text (README, "The API"): UTC, milliseconds, a ``Z``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from bridge.readings import iso_time


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))  # up to 2100
def test_a_time_reads_as_its_utc_date_and_time_to_the_millisecond(epoch: float) -> None:
    text = iso_time(epoch)
    whole = int(epoch)
    expected = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert text == f"{expected}.{int((epoch - whole) * 1000):03d}Z"


def test_times_within_one_second_keep_their_own_milliseconds() -> None:
    now = float(int(time.time()))
    texts = [iso_time(now + k / 1000) for k in (125, 250, 500)]  # exact in binary
    assert [t[-5:] for t in texts] == [".125Z", ".250Z", ".500Z"]
    assert len({t[:-5] for t in texts}) == 1
