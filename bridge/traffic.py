"""Traffic capture for the debugging page: per link, the last requests and their answers.

A link reports its exchanges only while it has a tap (see :class:`drivers.base.Tap`), and
it has one only while at least one viewer watches: with nobody watching, a link checks
``tap is not None`` once per request and copies or formats nothing. Each link keeps a ring
of the last :data:`KEPT` exchanges, already encoded as JSON, which a new viewer gets
first; it survives the viewers, so that reopening the view shows what was last captured.
Viewers have bounded queues: one that falls behind loses exchanges (they are counted, and
the ring still has them), never slows the poller.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from bridge.readings import iso_time
from bridge.wire import encode
from drivers.base import Exchange, Link

#: exchanges kept per link
KEPT = 200
#: frames a viewer may fall behind before it loses exchanges
VIEWER_QUEUE = 1000


class Viewer:
    """One open traffic view: its queue of encoded frames."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=VIEWER_QUEUE)
        self.lost = 0
        self.closing = asyncio.Event()

    def offer(self, frame: bytes) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.lost += 1


class LinkTap:
    """The tap of one link: its ring of exchanges, fanned out to the viewers."""

    def __init__(self, key: str, viewers: set[Viewer]) -> None:
        self.key = key
        self.ring: deque[tuple[float, bytes]] = deque(maxlen=KEPT)
        self._viewers = viewers
        self.captured = 0

    def record(self, exchange: Exchange) -> None:
        self.captured += 1
        frame = encode(exchange_json(self.key, exchange))
        self.ring.append((exchange.started, frame))
        for viewer in self._viewers:
            viewer.offer(frame)


def exchange_json(link: str, exchange: Exchange) -> dict[str, Any]:
    """An exchange as the traffic view's ``exchange`` frame."""
    return {
        "type": "exchange",
        "link": link,
        "device": exchange.device,
        "request": exchange.request,
        "sent": exchange.sent.hex(" "),
        "received": exchange.received.hex(" "),
        "ts": iso_time(exchange.started),
        "ms": round(exchange.duration * 1000, 3),
        "error": exchange.error,
    }


class Traffic:
    """Every link's tap, attached while at least one viewer watches.

    Links come and go with a reload (:meth:`add`, :meth:`remove`); a link that replaces
    one of the same key gets that key's tap, and so its ring.
    """

    def __init__(self) -> None:
        self._links: dict[str, Link[Any]] = {}
        self.viewers: set[Viewer] = set()
        self.taps: dict[str, LinkTap] = {}

    def add(self, key: str, link: Link[Any]) -> None:
        """A link the bridge polls from now on; tapped at once if someone watches."""
        self._links[key] = link
        tap = self.taps.get(key)
        if tap is None:
            tap = self.taps[key] = LinkTap(key, self.viewers)
        link.tap = tap if self.viewers else None

    def remove(self, key: str, link: Link[Any]) -> None:
        """A link the bridge no longer polls (its ring stays, for a link of the same key)."""
        link.tap = None
        if self._links.get(key) is link:
            del self._links[key]

    @property
    def watched(self) -> bool:
        return bool(self.viewers)

    def watch(self) -> tuple[Viewer, list[bytes]]:
        """A new viewer and the frames kept so far, oldest first; attaches the taps."""
        viewer = Viewer()
        self.viewers.add(viewer)
        for key, link in self._links.items():
            link.tap = self.taps[key]
        kept = sorted(entry for tap in self.taps.values() for entry in tap.ring)
        return viewer, [frame for _, frame in kept]

    def close_all(self) -> None:
        """Ask every open view to close (the bridge is stopping)."""
        for viewer in self.viewers:
            viewer.closing.set()

    def leave(self, viewer: Viewer) -> None:
        """The viewer is gone; with the last one, the links stop capturing."""
        self.viewers.discard(viewer)
        if not self.viewers:
            for link in self._links.values():
                link.tap = None
