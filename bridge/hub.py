"""The hub: fans published frames out to subscribers without ever waiting for one.

Publishing is a plain call that encodes a device poll's frame once per distinct filter
(:mod:`bridge.wire`) and offers the same bytes to every matching subscriber. A subscriber
with nothing pending (an idle connection without compression) has the whole WebSocket
frame, built once per published frame (:mod:`bridge.wsframe`), written straight to its
transport; any other gets it in its bounded queue, which its connection's sender task
empties in order. A subscriber whose queue is full is marked ``overflowed`` and asked to
close (1013: it may resume by ``seq``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bridge import wire, wsframe
from bridge.filter import EVERYTHING, Filter
from bridge.readings import PublishedReading

#: a close code and its reason, as the stream sends them
Closing = tuple[int, bytes]
#: distinct published frames whose WebSocket framing is kept for the next subscribers
FRAMINGS_KEPT = 16


class Subscriber:
    """One stream client: its filter, its queue of frames to send, and how to close it.

    Frames go to the queue until the connection :meth:`attach`-es its transport; from then
    on a frame offered while nothing is pending is written to the transport at once.
    """

    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self.filter = EVERYTHING
        self.overflowed = asyncio.Event()
        self.closing: Closing | None = None
        #: set by the connection: called once, when the hub asks it to close
        self.on_close: Callable[[Closing], None] | None = None
        #: set by the connection's sender while it writes a frame taken from the queue
        self.sending = False
        self._transport: asyncio.WriteTransport | None = None
        self._closed: Callable[[], bool] = lambda: False

    def attach(self, transport: asyncio.WriteTransport, closed: Callable[[], bool]) -> None:
        """Let frames be written straight to ``transport`` while nothing is pending.

        Only for a connection whose frames are plain (:func:`bridge.wsframe.text_frame`:
        no compression) and whose other writes are whole frames; ``closed`` tells when
        it has sent (or is sending) its close frame, after which nothing may follow.
        """
        self._transport, self._closed = transport, closed

    def detach(self) -> None:
        """Frames go to the queue only, from now on."""
        self._transport = None

    def idle(self) -> bool:
        """True if a frame offered now may be written at once without overtaking any."""
        transport = self._transport
        return (
            transport is not None
            and not self.sending
            and self.queue.empty()
            and transport.get_write_buffer_size() == 0
            and not transport.is_closing()
            and not self._closed()
        )

    def set_filter(self, devices: Iterable[str], points: Iterable[str]) -> None:
        """Replace the filter: device ids and ``device/point`` names; both empty = all."""
        self.filter = Filter(devices, points)

    def offer(self, frame: bytes, framing: Callable[[bytes], bytes] = wsframe.text_frame) -> bool:
        """Send a frame: written at once if :meth:`idle` (``framing`` gives its bytes on
        the wire), else queued; False (and asked to close) if the subscriber cannot keep
        up."""
        if self.closing is not None:
            return True
        if self.idle():
            assert self._transport is not None
            self._transport.write(framing(frame))
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
        self._framings: dict[bytes, bytes] = {}

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
        if not subscriber.offer(frame, self._framing) and not was_closing:
            self.overflows += 1

    def _framing(self, payload: bytes) -> bytes:
        """The payload's WebSocket frame, built once for all the subscribers it is sent to."""
        # bytes keep their hash, and a lookup tries identity first: one published frame is
        # hashed once however many subscribers it goes to
        framed = self._framings.get(payload)
        if framed is None:
            if len(self._framings) >= FRAMINGS_KEPT:
                self._framings.clear()
            framed = self._framings[payload] = wsframe.text_frame(payload)
        return framed
