"""What goes on the wire: the one JSON encoder, and every frame of the stream.

The stream's frames (README, "Stream") are built here and nowhere else: ``hello``,
``snapshot``, ``readings``, ``gap``, ``status`` and ``error``, and the close codes with
their reasons. Everything is encoded once to UTF-8 bytes with orjson (docs/decisions.md);
the hub sends the same bytes to every subscriber a frame is for, and the REST routes use
the same encoder.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from bridge.readings import PublishedReading, iso_time
from drivers.base import Value

VERSION = 1
#: readings per frame when replaying a backlog
BACKLOG_CHUNK = 500

#: close codes and reasons: 1013 try again later (resume by seq), 1001 going away
TOO_SLOW = (1013, b"too slow: reconnect with since=<last seq> to resume")
STOPPING = (1001, b"the bridge is stopping")

_FALLBACK = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)


def encode(document: Any) -> bytes:
    """A JSON document as compact UTF-8 bytes.

    orjson refuses integers beyond 64 bits, which a line instrument can send: such a
    document goes through the standard library instead, with the same result.
    """
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        return _FALLBACK.encode(document).encode()


def hello(boot: str, seq: int) -> bytes:
    return encode({"type": "hello", "version": VERSION, "boot": boot, "seq": seq})


def snapshot(readings: Iterable[PublishedReading]) -> bytes:
    return encode({"type": "snapshot", "readings": [r.to_json() for r in readings]})


def readings(readings: Iterable[PublishedReading]) -> bytes:
    """One device poll's published readings (or a chunk of a resumed backlog)."""
    return encode({"type": "readings", "readings": [r.to_json() for r in readings]})


class GoodReadings:
    """The ``readings`` frames of one device's good readings, encoded from columns.

    The same bytes as :func:`readings` of the same readings (quality good, no error),
    without a reading object or a new dict for each: one dict per point is kept and its
    value, ts and seq are set just before each encoding.
    """

    __slots__ = ("_documents",)

    def __init__(self, device: str, points: Sequence[str], units: Sequence[str | None]) -> None:
        self._documents: list[dict[str, Any]] = [
            {"device": device, "point": point, "value": None, "unit": unit, "quality": "good",
             "ts": None, "seq": 0}
            for point, unit in zip(points, units, strict=True)
        ]  # fmt: skip

    def encode(
        self, points: Sequence[int] | None, values: Sequence[Value], ts: float, first_seq: int
    ) -> bytes:
        """The frame of ``values`` of these points (by position; None: all, in order), read
        at ``ts`` and published with seqs from ``first_seq`` on."""
        documents = self._documents
        chosen = documents if points is None else [documents[i] for i in points]
        stamp = iso_time(ts)
        for document, value, seq in zip(chosen, values, itertools.count(first_seq)):
            document["value"] = value
            document["ts"] = stamp
            document["seq"] = seq
        return encode({"type": "readings", "readings": chosen})


def backlog(kept: Sequence[PublishedReading]) -> list[bytes]:
    """A resumed subscriber's missed readings, in frames of at most BACKLOG_CHUNK."""
    return [readings(kept[i : i + BACKLOG_CHUNK]) for i in range(0, len(kept), BACKLOG_CHUNK)]


def gap(since: int, oldest: int) -> bytes:
    return encode({"type": "gap", "since": since, "oldest": oldest})


def error(detail: str) -> bytes:
    return encode({"type": "error", "detail": detail})


def status(
    device: str, status: str, error: str | None, last_error_at: float | None,
    last_success: float | None,
) -> dict[str, Any]:  # fmt: skip
    """A device's ``status`` frame (as a dict: north publishes it too): ``error`` unless
    online or starting, ``ts`` of the last failure when offline, else of the last success."""
    frame: dict[str, Any] = {"type": "status", "device": device, "status": status}
    if status not in ("online", "starting") and error:
        frame["error"] = error
    stamp = last_error_at if status == "offline" else last_success
    frame["ts"] = iso_time(stamp) if stamp else None
    return frame
