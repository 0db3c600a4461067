"""The hub: fans published frames out to subscribers without ever waiting for one.

Publishing is a plain call that encodes a device poll's frame once per distinct filter
(:mod:`bridge.wire`) and offers the same bytes to every matching subscriber. A subscriber
whose connection the bridge writes itself (a plain TCP connection without compression:
:mod:`bridge.api.stream`) and that has nothing pending gets the whole WebSocket frame,
built once per published frame (:mod:`bridge.wsframe`), sent straight to its socket; any
other gets it in its bounded queue, which its connection's sender task empties in order. A
subscriber whose queue is full is marked ``overflowed`` and asked to close (1013: it may
resume by ``seq``).

The subscribers that take everything and have nothing pending are kept apart, by their
sockets: a published frame is sent to those in one pass over the sockets, without touching
the subscribers themselves (with a thousand of them, looking at each one's state cost more
than a third of the fan-out, and a write through each one's transport, with the checks it
needs, half as much as the system call). A subscriber leaves that list the moment anything
is pending for it (a frame the kernel did not take whole: the rest of it is queued first),
it changes its filter, it is asked to close or its connection detaches it, and rejoins once
its queue is empty again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

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


class FrameSink(Protocol):
    """What the hub needs of a connection the bridge writes itself
    (:class:`bridge.api.stream_socket.SocketWriter`)."""

    #: non-blocking; nothing but the bridge writes to it while a subscriber is attached
    socket: socket.socket

    def begun(self) -> None:
        """Part of a frame was sent to the socket and the rest queued: nothing else may be
        written before that rest."""


class Subscriber:
    """One stream client: its filter, its queue of frames to send, and how to close it.

    With ``whole_frames`` (a connection the bridge writes itself) its queue holds whole
    WebSocket frames, or the rest of one, which the connection sends to its socket as they
    are; without, the frames' payloads, which the connection sends through aiohttp. Frames
    go to the queue until the connection :meth:`attach`-es its socket; from then on a frame
    offered while nothing is pending is sent to the socket at once.
    """

    __slots__ = (
        "_hub", "_sink", "closing", "filter", "on_close", "overflowed", "pending", "placed",
        "queue", "whole_frames",
    )  # fmt: skip

    def __init__(self, hub: Hub, queue_size: int, whole_frames: bool = False) -> None:
        self._hub = hub
        self.whole_frames = whole_frames
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self.filter = EVERYTHING
        self.overflowed = asyncio.Event()
        self.closing: Closing | None = None
        #: set by the connection: called once, when the hub asks it to close
        self.on_close: Callable[[Closing], None] | None = None
        #: frames put in the queue and not yet sent: the connection's sender lowers it
        #: once a frame it took is written
        self.pending = 0
        self._sink: FrameSink | None = None
        #: the socket under which the hub keeps it in its one-pass list, if it does
        self.placed: socket.socket | None = None

    def attach(self, sink: FrameSink) -> None:
        """Let frames be sent straight to the sink's socket while nothing is pending.

        Only for a subscriber with ``whole_frames``, on a connection that nothing but the
        bridge writes to while it is attached, and whose queued frames are sent whole: a
        frame sent here must never fall in the middle of another. The connection must
        :meth:`detach` before anything else writes to it (aiohttp's close frame).
        """
        assert self.whole_frames
        self._sink = sink
        self._hub._place(self)

    def detach(self) -> None:
        """Frames go to the queue only, from now on."""
        self._sink = None
        self._hub._place(self)

    def direct_socket(self) -> socket.socket | None:
        """The socket to send to at once if this subscriber takes every frame and nothing
        is pending for it; else None."""
        if (
            self._sink is not None
            and self.closing is None
            and not self.pending
            and self.filter.everything
        ):
            return self._sink.socket
        return None

    def set_filter(self, devices: Iterable[str], points: Iterable[str]) -> None:
        """Replace the filter: device ids and ``device/point`` names; both empty = all."""
        self.filter = Filter(devices, points)
        self._hub._place(self)

    def offer(self, frame: bytes, framed: bytes | None = None) -> bool:
        """Send a frame (``framed``: its WebSocket frame, if already built): at once when
        that cannot overtake anything (attached, nothing pending), else (or whatever of
        it the kernel did not take) queued; False (and asked to close) if the subscriber
        cannot keep up."""
        if not self.whole_frames:
            return self.closing is not None or self._enqueue(frame)
        return self.offer_frame(wsframe.text_frame(frame) if framed is None else framed)

    def offer_frame(self, frame: bytes) -> bool:
        """:meth:`offer` a whole WebSocket frame (a text frame, a ping, a pong) to a
        subscriber with ``whole_frames``."""
        if self.closing is not None:
            return True
        sent = 0
        if self._sink is not None and not self.pending:
            # OSError: the kernel takes nothing now, or the peer is gone
            with contextlib.suppress(OSError):
                sent = self._sink.socket.send(frame)
            if sent == len(frame):
                return True
        return self._queue_unsent(frame, sent)

    def _queue_unsent(self, frame: bytes, sent: int) -> bool:
        """Queue what the socket did not take of ``frame``: a frame it took in part is
        open, and its rest goes first."""
        if sent:
            assert self._sink is not None
            assert not self.pending
            self._sink.begun()
            frame = frame[sent:]
        return self._enqueue(frame)

    def _enqueue(self, frame: bytes) -> bool:
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
        # ``subscribers`` in two: those sent to in one pass, by their sockets
        # (Subscriber.direct_socket), and all the others
        self._direct: dict[socket.socket, Subscriber] = {}
        self._others: set[Subscriber] = set()

    def subscribe(self, whole_frames: bool = False) -> Subscriber:
        """A new subscriber that receives every frame published from now on (queued as
        whole WebSocket frames with ``whole_frames``, else as payloads)."""
        subscriber = Subscriber(self, self.queue_size, whole_frames)
        self.subscribers.add(subscriber)
        self._others.add(subscriber)
        return subscriber

    def close_all(self) -> None:
        """Ask every subscriber's connection to close: the bridge is stopping."""
        for subscriber in list(self.subscribers):
            subscriber.close(wire.STOPPING)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self._leave_direct(subscriber)
        self._others.discard(subscriber)

    def _leave_direct(self, subscriber: Subscriber) -> None:
        if subscriber.placed is not None:
            del self._direct[subscriber.placed]
            subscriber.placed = None

    def _place(self, subscriber: Subscriber) -> None:
        """Put a subscriber whose state changed on the side it now belongs to."""
        if subscriber not in self.subscribers:
            return
        sock = subscriber.direct_socket()
        if sock is not subscriber.placed:
            self._leave_direct(subscriber)
        if sock is None:
            self._others.add(subscriber)
        else:
            self._direct[sock] = subscriber
            subscriber.placed = sock
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
        """Send a frame to every socket of the one-pass list; a subscriber whose socket
        did not take all of it gets the rest queued (and so leaves the list)."""
        data = frame[1]
        size = len(data)
        backed_up: list[tuple[socket.socket, int]] = []
        for sock in self._direct:
            try:
                sent = sock.send(data)
            except OSError:  # the kernel takes nothing now, or the peer is gone
                sent = 0
            if sent != size:
                backed_up.append((sock, sent))
        for sock, sent in backed_up:
            self._direct[sock]._queue_unsent(data, sent)
