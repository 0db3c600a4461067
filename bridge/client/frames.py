"""The stream's frames as the client reads them: one handler per frame ``type``.

A :class:`FrameReader` lives for one connection. It turns each text frame into the events
the subscription yields, and moves the resume position (``last_seq``, ``boot``) as it goes;
the frame shapes are the ones README's "API" section documents.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bridge.client.errors import BridgeError
from bridge.client.models import Event, Gap, Reading, StatusChange, parse_time

log = logging.getLogger("bridge.client")


@dataclass(slots=True)
class ResumePoint:
    """What a subscription asks for, and where it would resume: shared by its connections."""

    devices: tuple[str, ...]
    points: tuple[str, ...]
    statuses: bool
    last_seq: int | None
    boot: str | None
    connects: int = 0


class FrameReader:
    """The frames of one stream connection, in order, as events."""

    def __init__(self, state: ResumePoint) -> None:
        self.state = state
        #: whether the bridge said hello (the connection counts as made)
        self.greeted = False
        self._hello_seq = 0
        self._boot_changed = False
        self._handlers: dict[str, Callable[[dict[str, Any]], Iterable[Event]]] = {
            "hello": self._hello,
            "snapshot": self._snapshot,
            "readings": self._readings,
            "gap": self._gap,
            "status": self._status,
            "error": self._error,
        }

    def events(self, data: str) -> Iterable[Event]:
        """The events of one text frame; frame types this client does not know are skipped."""
        frame = parse_frame(data)
        handler = self._handlers.get(str(frame.get("type")))
        return handler(frame) if handler is not None else ()

    def _hello(self, frame: dict[str, Any]) -> Iterable[Event]:
        state = self.state
        self._hello_seq = int(frame["seq"])
        self._boot_changed = state.boot is not None and frame["boot"] != state.boot
        state.boot = str(frame["boot"])
        state.connects += 1
        self.greeted = True
        return ()

    def _snapshot(self, frame: dict[str, Any]) -> Iterator[Event]:
        # The snapshot is the state as of the hello: resume after its seq.
        latest = sorted((parse_reading(r) for r in frame["readings"]), key=_seq)
        self.state.last_seq = self._hello_seq
        yield from latest

    def _readings(self, frame: dict[str, Any]) -> Iterator[Event]:
        state = self.state
        for item in frame["readings"]:
            reading = parse_reading(item)
            if state.last_seq is not None and reading.seq <= state.last_seq:
                continue  # already yielded
            state.last_seq = reading.seq
            yield reading

    def _gap(self, frame: dict[str, Any]) -> Iterable[Event]:
        return (Gap(int(frame["since"]), int(frame["oldest"]), self._boot_changed),)

    def _status(self, frame: dict[str, Any]) -> Iterable[Event]:
        if not self.state.statuses:
            return ()
        change = StatusChange(
            device=str(frame["device"]),
            status=str(frame["status"]),
            error=frame.get("error"),
            ts=parse_time(frame.get("ts")),
        )
        return (change,)

    def _error(self, frame: dict[str, Any]) -> Iterable[Event]:
        log.warning("stream: the bridge says: %s", frame.get("detail"))
        return ()


def parse_frame(data: str) -> dict[str, Any]:
    """A text frame as a JSON object; BridgeError for anything else."""
    try:
        frame = json.loads(data)
    except ValueError:
        frame = None
    if not isinstance(frame, dict):
        raise BridgeError(f"the stream sent something that is not a frame: {data[:200]!r}")
    return frame


def parse_reading(item: Any) -> Reading:
    """A reading from a frame; BridgeError when it is malformed."""
    try:
        return Reading.from_json(item)
    except (KeyError, TypeError, ValueError) as exc:
        raise BridgeError(f"the stream sent a malformed reading {item!r}: {exc}") from None


def _seq(reading: Reading) -> int:
    return reading.seq
