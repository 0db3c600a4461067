"""Readings: the plain, frozen records that flow from the poller to the API."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any, NamedTuple

from bridge.states import Quality
from drivers.base import Value


@lru_cache(maxsize=256)
def iso_time(epoch: float) -> str:
    """``2026-11-27T13:05:07.123Z`` for a Unix time.

    Cached: every reading of one poll carries the same time, and formatting it is a large
    part of encoding a reading.
    """
    whole = int(epoch)
    millis = int((epoch - whole) * 1000)
    return f"{_iso_second(whole)}.{millis:03d}Z"


@lru_cache(maxsize=64)
def _iso_second(whole: int) -> str:
    # the polls of every device within one second share this: each poll has a time of
    # its own, so iso_time's cache alone would format the date and time once a poll
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


class PublishedReading(NamedTuple):
    """One point's value at one moment, as the service publishes it (the client's own
    record of a received reading is :class:`bridge.client.Reading`).

    ``ts`` is when the value was read from the device (Unix time; None if never read);
    ``seq`` is the process-wide publication counter (0 for a point never published).
    A named tuple rather than a frozen dataclass: as immutable, and several times faster
    to build, which the store does for every point of every poll.
    """

    device: str
    point: str
    value: Value | None
    unit: str | None
    quality: Quality
    ts: float | None
    seq: int
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of a reading (README, "The API")."""
        body: dict[str, Any] = {
            "device": self.device,
            "point": self.point,
            "value": self.value,
            "unit": self.unit,
            "quality": self.quality,
            "ts": None if self.ts is None else iso_time(self.ts),
            "seq": self.seq,
        }
        if self.error is not None:
            body["error"] = self.error
        return body
