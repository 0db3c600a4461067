"""What goes on the wire: the one JSON encoder, and every frame of the stream.

The stream's frames (README, "Stream") are built here and nowhere else: ``hello``,
``snapshot``, ``readings``, ``gap``, ``status`` and ``error``, and the close codes with
their reasons. Everything is encoded once to UTF-8 bytes with orjson (docs/decisions.md);
the hub sends the same bytes to every subscriber a frame is for, and the REST routes use
the same encoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
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
        return _stdlib(document)


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
    without a reading object or a dict for each. Each point's part of a frame is kept as a
    bytes template with holes for its value and seq, and the frame's readings share one
    ts: a frame is its points' templates joined by that ts, then one ``bytes %``. The
    template formats the values of a frame of ints itself (``%d``); the values of any
    other frame are encoded first, in one call. The template of the frame of every point
    is kept for the value types it was made for.
    """

    __slots__ = ("_every", "_parts")

    def __init__(self, device: str, points: Sequence[str], units: Sequence[str | None]) -> None:
        #: per point: its template for an int value, and for a value encoded already, each
        #: without its ts (which follows)
        self._parts: list[tuple[bytes, bytes]] = []
        for point, unit in zip(points, units, strict=True):
            head = _literal(encode({"device": device, "point": point})[:-1] + b',"value":')
            tail = b',"unit":' + _literal(encode(unit)) + b',"quality":"good",'
            self._parts.append((head + b"%d" + tail, head + b"%b" + tail))
        #: for the frame of every point: the value types it is for, its pieces, and
        #: whether they are for ints
        self._every: tuple[Sequence[type], list[bytes], bool] = ((), [], True)

    def encode(
        self, points: Sequence[int] | None, values: Sequence[Value], ts: float, first_seq: int,
        types: Sequence[type],
    ) -> bytes:  # fmt: skip
        """The frame of ``values`` of these points (by position; None: all, in order), read
        at ``ts`` and published with seqs from ``first_seq`` on; ``types`` are the types of
        every point's value (all of them, whichever are published)."""
        if points is None:
            if self._every[0] is not types:
                self._every = (types, *self._pieces(range(len(types)), types))
            _, pieces, ints = self._every
        else:
            pieces, ints = self._pieces(points, types)
        n = len(values)
        holes: list[object] = [None] * (2 * n)
        holes[0::2] = values if ints else _each_encoded(values)
        holes[1::2] = range(first_seq, first_seq + n)
        stamp = b'"ts":"' + iso_time(ts).encode() + b'","seq":'
        return stamp.join(pieces) % tuple(holes)

    def _pieces(self, points: Iterable[int], types: Sequence[type]) -> tuple[list[bytes], bool]:
        """The template of a frame of these points, whose values have these types (by
        point), in pieces that their ts joins; and whether it is a template for ints."""
        chosen = list(points)
        ints = all(types[i] is int for i in chosen)
        parts = [self._parts[i][not ints] for i in chosen]
        if not parts:
            return [b'{"type":"readings","readings":[]}'], ints
        pieces = [b'{"type":"readings","readings":[' + parts[0]]
        pieces += [b"%d}," + part for part in parts[1:]]
        pieces.append(b"%d}]}")
        return pieces, ints


def _each_encoded(values: Sequence[Value]) -> list[bytes]:
    """Each value encoded, as :func:`encode` would encode it within a document.

    One encoding of the list, cut at its commas: orjson called once a value, its results
    kept, cost about 1.4 µs a float on this machine kind, against about 25 ns within one
    list. Only a string can hold a comma, and then the cut gives more parts than values:
    those are encoded one by one.
    """
    one: Callable[[Any], bytes] = orjson.dumps
    try:
        whole = one(values)
    except orjson.JSONEncodeError:  # an int beyond 64 bits: as encode() does, the stdlib
        one = _stdlib
        whole = one(values)
    texts = whole[1:-1].split(b",")
    return texts if len(texts) == len(values) else [one(value) for value in values]


def _stdlib(document: Any) -> bytes:
    return _FALLBACK.encode(document).encode()


def _literal(text: bytes) -> bytes:
    """Bytes as they stand in a ``bytes %`` template."""
    return text.replace(b"%", b"%%")


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
