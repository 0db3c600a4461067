"""The hub: fans published frames out to subscribers without ever waiting for one.

Each subscriber has a bounded queue of encoded frames. Publishing is a plain call that
encodes a device poll's frame once per distinct filter (:mod:`bridge.wire`) and puts the
same bytes into every matching queue; a subscriber whose queue is full is marked
``overflowed`` and asked to close (1013: it may resume by ``seq``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bridge import wire
from bridge.filter import EVERYTHING, Filter
from bridge.readings import PublishedReading

#: a close code and its reason, as the stream sends them
Closing = tuple[int, bytes]


class Subscriber:
    """One stream client: its filter, its queue of frames to send, and how to close it."""

    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self.filter = EVERYTHING
        self.overflowed = asyncio.Event()
        self.closing: Closing | None = None
        #: set by the connection: called once, when the hub asks it to close
        self.on_close: Callable[[Closing], None] | None = None

    def set_filter(self, devices: Iterable[str], points: Iterable[str]) -> None:
        """Replace the filter: device ids and ``device/point`` names; both empty = all."""
        self.filter = Filter(devices, points)

    def offer(self, frame: bytes) -> bool:
        """Queue a frame; False (and asked to close) if the subscriber cannot keep up."""
        if self.closing is not None:
            return True
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed.set()
            self.close(wire.TOO_SLOW)
            return False
        return True

    def close(self, closing: Closing) -> None:
        """Ask the connection to close with this code and reason (once)."""
        if self.closing is not None:
            return
        self.closing = closing
        if self.on_close is not None:
            self.on_close(closing)


class Hub:
    """Every live subscriber; publishes frames to those whose filter matches."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self.overflows = 0
        #: subscribers whose close handshake did not finish in time: their connection was cut
        self.stalls = 0

    def subscribe(self) -> Subscriber:
        """A new subscriber that receives every frame published from now on."""
        subscriber = Subscriber(self.queue_size)
        self.subscribers.add(subscriber)
        return subscriber

    def close_all(self) -> None:
        """Ask every subscriber's connection to close: the bridge is stopping."""
        for subscriber in list(self.subscribers):
            subscriber.close(wire.STOPPING)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def publish_readings(
        self, device: str, readings: Sequence[PublishedReading], whole: bytes | None = None
    ) -> None:
        """Send one ``readings`` frame (one device poll) to every matching subscriber.

        The frame is encoded once for all subscribers that take the whole device (or given
        as ``whole``, already encoded for north), and once per distinct filter for the
        others; every subscriber gets the same bytes.
        """
        if not readings or not self.subscribers:
            return
        by_filter: dict[Filter, bytes | None] = {}
        for subscriber in list(self.subscribers):
            wanted = subscriber.filter
            if wanted.whole(device):
                if whole is None:
                    whole = wire.readings(readings)
                frame: bytes | None = whole
            elif wanted in by_filter:
                frame = by_filter[wanted]
            else:
                named = wanted.points_of(device)
                chosen = [r for r in readings if r.point in named]
                frame = by_filter[wanted] = wire.readings(chosen) if chosen else None
            if frame is not None:
                self._offer(subscriber, frame)

    def publish_status(self, device: str, frame: dict[str, Any]) -> None:
        """Send a ``status`` frame (:func:`bridge.wire.status`) to subscribers interested
        in the device, encoded once."""
        encoded: bytes | None = None
        for subscriber in list(self.subscribers):
            if subscriber.filter.touches(device):
                encoded = encoded or wire.encode(frame)
                self._offer(subscriber, encoded)

    def _offer(self, subscriber: Subscriber, frame: bytes) -> None:
        was_closing = subscriber.closing is not None
        if not subscriber.offer(frame) and not was_closing:
            self.overflows += 1
