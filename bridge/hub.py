"""The hub: fans published frames out to subscribers without ever waiting for one.

Publishing is a plain call that encodes a device poll's frame once per distinct filter
(:mod:`bridge.wire`) and offers the same bytes to every matching subscriber. A subscriber
with nothing pending (an idle connection without compression) has the whole WebSocket
frame, built once per published frame (:mod:`bridge.wsframe`), written straight to its
transport; any other gets it in its bounded queue, which its connection's sender task
empties in order. A subscriber whose queue is full is marked ``overflowed`` and asked to
close (1013: it may resume by ``seq``).

The subscribers that take everything and have nothing pending are kept apart, each with
its transport: a published frame is written to those in one pass over the transports,
without touching the subscribers themselves (with a thousand of them, looking at each
one's state cost more than a third of the fan-out). A subscriber leaves that list the
moment anything is pending for it, it changes its filter, it is asked to close or its
connection detaches it, and rejoins once its queue is empty again.
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
#: a frame as the hub sends it: the payload, and its WebSocket frame for direct writes
Framed = tuple[bytes, bytes]


def framed(payload: bytes) -> Framed:
    """A payload with its WebSocket frame, built once for every subscriber it goes to."""
    return payload, wsframe.text_frame(payload)


class Subscriber:
    """One stream client: its filter, its queue of frames to send, and how to close it.

    Frames go to the queue until the connection :meth:`attach`-es its transport; from then
    on a frame offered while nothing is pending is written to the transport at once.
    """

    __slots__ = (
        "_hub", "_transport", "closing", "filter", "on_close", "overflowed", "pending",
        "queue",
    )  # fmt: skip

    def __init__(self, hub: Hub, queue_size: int) -> None:
        self._hub = hub
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self.filter = EVERYTHING
        self.overflowed = asyncio.Event()
        self.closing: Closing | None = None
        #: set by the connection: called once, when the hub asks it to close
        self.on_close: Callable[[Closing], None] | None = None
        #: frames put in the queue and not yet sent: the connection's sender lowers it
        #: once a frame it took is written
        self.pending = 0
        self._transport: asyncio.WriteTransport | None = None

    def attach(self, transport: asyncio.WriteTransport) -> None:
        """Let frames be written straight to ``transport`` while nothing is pending.

        Only for a connection whose frames are plain (:func:`bridge.wsframe.text_frame`:
        no compression) and whose other writes are whole frames. The connection must
        :meth:`detach` before it sends its close frame: nothing may follow that.
        """
        self._transport = transport
        self._hub._place(self)

    def detach(self) -> None:
        """Frames go to the queue only, from now on."""
        self._transport = None
        self._hub._place(self)

    def direct_transport(self) -> asyncio.WriteTransport | None:
        """The transport to write to at once if this subscriber takes every frame and
        nothing is pending for it; else None."""
        if self.closing is None and not self.pending and self.filter.everything:
            return self._transport
        return None

    def set_filter(self, devices: Iterable[str], points: Iterable[str]) -> None:
        """Replace the filter: device ids and ``device/point`` names; both empty = all."""
        self.filter = Filter(devices, points)
        self._hub._place(self)

    def offer(self, frame: bytes, framed: bytes | None = None) -> bool:
        """Send a frame: written at once (as ``framed``, its WebSocket frame, if given)
        when that cannot overtake anything (attached, nothing pending, the transport's
        buffer empty and the transport open), else queued; False (and asked to close) if
        the subscriber cannot keep up."""
        if self.closing is not None:
            return True
        transport = self._transport
        if (
            transport is not None
            and not self.pending
            and not transport.get_write_buffer_size()
            and not transport.is_closing()
        ):
            transport.write(wsframe.text_frame(frame) if framed is None else framed)
            return True
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed.set()
            self._hub.overflows += 1
            self.close(wire.TOO_SLOW)
            return False
        self.pending += 1
        if self.pending == 1:
            self._hub._place(self)
        return True

    def sent(self) -> None:
        """The connection's sender has written a frame it took from the queue."""
        self.pending -= 1
        if not self.pending:
            self._hub._place(self)

    def close(self, closing: Closing) -> None:
        """Ask the connection to close with this code and reason (once)."""
        if self.closing is not None:
            return
        self.closing = closing
        self._hub._place(self)
        if self.on_close is not None:
            self.on_close(closing)


class Hub:
    """Every live subscriber; publishes frames to those whose filter matches."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        #: subscribers closed for a full queue (each counted once, whatever overflowed it)
        self.overflows = 0
        #: subscribers whose close handshake did not finish in time: their connection was cut
        self.stalls = 0
        # ``subscribers`` in two: those written to in one pass, with their transports
        # (Subscriber.direct_transport), and all the others
        self._direct: dict[Subscriber, asyncio.WriteTransport] = {}
        self._others: set[Subscriber] = set()

    def subscribe(self) -> Subscriber:
        """A new subscriber that receives every frame published from now on."""
        subscriber = Subscriber(self, self.queue_size)
        self.subscribers.add(subscriber)
        self._others.add(subscriber)
        return subscriber

    def close_all(self) -> None:
        """Ask every subscriber's connection to close: the bridge is stopping."""
        for subscriber in list(self.subscribers):
            subscriber.close(wire.STOPPING)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self._direct.pop(subscriber, None)
        self._others.discard(subscriber)

    def _place(self, subscriber: Subscriber) -> None:
        """Put a subscriber whose state changed on the side it now belongs to."""
        if subscriber not in self.subscribers:
            return
        transport = subscriber.direct_transport()
        if transport is None:
            self._direct.pop(subscriber, None)
            self._others.add(subscriber)
        else:
            self._direct[subscriber] = transport
            self._others.discard(subscriber)

    def publish_readings(
        self, device: str, readings: Sequence[PublishedReading], whole: bytes | None = None
    ) -> None:
        """Send one ``readings`` frame (one device poll) to every matching subscriber.

        The frame is encoded once for all subscribers that take the whole device (or given
        as ``whole``, already encoded for north), and once per distinct filter for the
        others; every subscriber gets the same bytes, and the same WebSocket frame.
        """
        if not readings or not self.subscribers:
            return
        others = tuple(self._others)  # before the one pass moves any subscriber here
        whole_framed: Framed | None = None
        if self._direct:
            whole_framed = framed(wire.readings(readings) if whole is None else whole)
            self._write_direct(whole_framed)
        by_filter: dict[Filter, Framed | None] = {}
        chosen_framed: Framed | None
        for subscriber in others:
            wanted = subscriber.filter
            if wanted.whole(device):
                if whole_framed is None:
                    whole_framed = framed(wire.readings(readings) if whole is None else whole)
                chosen_framed = whole_framed
            elif wanted in by_filter:
                chosen_framed = by_filter[wanted]
            else:
                named = wanted.points_of(device)
                chosen = [r for r in readings if r.point in named]
                chosen_framed = framed(wire.readings(chosen)) if chosen else None
                by_filter[wanted] = chosen_framed
            if chosen_framed is not None:
                subscriber.offer(*chosen_framed)

    def publish_status(self, device: str, frame: dict[str, Any]) -> None:
        """Send a ``status`` frame (:func:`bridge.wire.status`) to subscribers interested
        in the device, encoded once."""
        encoded: Framed | None = None
        for subscriber in tuple(self.subscribers):
            if subscriber.filter.touches(device):
                encoded = encoded or framed(wire.encode(frame))
                subscriber.offer(*encoded)

    def _write_direct(self, frame: Framed) -> None:
        """Write a frame to every transport of the one-pass list whose buffer is empty;
        a subscriber whose buffer is not gets it queued (and so leaves the list)."""
        data = frame[1]
        backed_up: list[Subscriber] = []
        for subscriber, transport in self._direct.items():
            if transport.get_write_buffer_size() or transport.is_closing():
                backed_up.append(subscriber)
            else:
                transport.write(data)
        for subscriber in backed_up:
            subscriber.offer(*frame)
