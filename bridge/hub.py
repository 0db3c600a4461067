"""The hub: fans published frames out to subscribers without ever waiting for one.

Each subscriber has a bounded queue of encoded frames. Publishing is a plain call that puts
the same encoded text into every matching queue; a subscriber whose queue is full is marked
``overflowed`` (its connection is then closed with 1013, and it may resume by ``seq``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import Any

from bridge.readings import Reading

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)


def encode(frame: dict[str, Any]) -> str:
    """One frame as compact JSON text."""
    return _ENCODER.encode(frame)


class Subscriber:
    """One stream client: its filter and its queue of frames to send."""

    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.devices: frozenset[str] = frozenset()
        self.points: frozenset[str] = frozenset()
        self.overflowed = asyncio.Event()
        self.shutting_down = asyncio.Event()

    def set_filter(self, devices: Iterable[str], points: Iterable[str]) -> None:
        """Replace the filter: device ids and ``device/point`` names; both empty = all."""
        self.devices = frozenset(devices)
        self.points = frozenset(points)

    @property
    def matches_all(self) -> bool:
        return not self.devices and not self.points

    def matches(self, device: str, point: str) -> bool:
        """Whether a reading of this point passes the filter."""
        return self.matches_all or device in self.devices or f"{device}/{point}" in self.points

    def offer(self, frame: str) -> None:
        """Queue a frame, or mark the subscriber overflowed if it cannot keep up."""
        if self.overflowed.is_set():
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed.set()


class Hub:
    """Every live subscriber; publishes frames to those whose filter matches."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self.overflows = 0

    def subscribe(self) -> Subscriber:
        """A new subscriber that receives every frame published from now on."""
        subscriber = Subscriber(self.queue_size)
        self.subscribers.add(subscriber)
        return subscriber

    def close_all(self) -> None:
        """Ask every subscriber's connection to close: the bridge is stopping."""
        for subscriber in self.subscribers:
            subscriber.shutting_down.set()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def publish_readings(self, device: str, readings: Sequence[Reading]) -> None:
        """Send one ``readings`` frame (one device poll) to every matching subscriber.

        The frame is encoded once for all subscribers that take every reading, and once per
        distinct subset for the others.
        """
        if not readings or not self.subscribers:
            return
        encoded: dict[tuple[int, ...] | None, str] = {}
        for subscriber in list(self.subscribers):
            if subscriber.matches_all or device in subscriber.devices:
                key: tuple[int, ...] | None = None
            else:
                key = tuple(
                    i for i, r in enumerate(readings) if f"{device}/{r.point}" in subscriber.points
                )
                if not key:
                    continue
            frame = encoded.get(key)
            if frame is None:
                chosen = readings if key is None else [readings[i] for i in key]
                frame = encode({"type": "readings", "readings": [r.to_json() for r in chosen]})
                encoded[key] = frame
            self._offer(subscriber, frame)

    def publish_status(self, device: str, frame: dict[str, Any]) -> None:
        """Send a ``status`` frame to subscribers interested in the device."""
        text: str | None = None
        for subscriber in list(self.subscribers):
            if (
                subscriber.matches_all
                or device in subscriber.devices
                or any(p.startswith(device + "/") for p in subscriber.points)
            ):
                text = text or encode(frame)
                self._offer(subscriber, text)

    def _offer(self, subscriber: Subscriber, frame: str) -> None:
        was_overflowed = subscriber.overflowed.is_set()
        subscriber.offer(frame)
        if not was_overflowed and subscriber.overflowed.is_set():
            self.overflows += 1
