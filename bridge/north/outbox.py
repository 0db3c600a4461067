"""The durable outbox: what is bound for the broker, on disk until the broker has it.

The producer side (``append``) is a plain call on the event loop that never touches the
disk: it numbers the message, notes it in the in-memory index and hands it to the outbox
file's writer thread (``outbox_file``), which commits everything that accumulated in one
SQLite transaction (WAL mode).
The sender reads committed messages in order (``read``), from a bounded in-memory tail
while it keeps up and from the database after an outage, and reports each broker
acknowledgement (``acked``); acknowledged messages are deleted by the writer's next
transaction. A message therefore leaves the outbox only after its PUBACK, and a process
killed at any moment leaves on disk everything it committed, in order.

When the outbox is over its limits (bytes, age) the oldest messages are dropped: the
newest dropped message of each device is replaced by a ``gap`` message (made by the
format), so consumers learn of the loss at the place where it happened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from array import array
from collections import deque
from collections.abc import Callable

from bridge.north.outbox_file import Message, OutboxFile

__all__ = ["GapMaker", "Message", "Outbox"]

log = logging.getLogger(__name__)

#: bytes of recent messages kept in memory, so that a sender that keeps up never reads
#: back from the database what it has just written
TAIL_BYTES = 8 * 1024 * 1024

#: (stream, readings lost after this seq, up to this seq, frames lost) -> (topic, payload);
#: a stream is what ``append`` was given as ``device``: whose seqs these are
GapMaker = Callable[[str, int, int, int], tuple[str, bytes]]


class Outbox:
    """An SQLite outbox with an in-memory index in compact columns.

    The index (``array`` columns with a head cursor) holds, for every message still in the
    outbox, its id, time, size, device and seq range: enough for the limits, the metrics
    and the gap messages without a query, and a few dozen bytes a message.
    """

    def __init__(self, path: str, fmt: str, max_bytes: int, max_age: float, gap: GapMaker) -> None:
        self.path = path
        self.format = fmt
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._gap = gap
        self._ids = array("q")
        self._ts = array("d")
        self._sizes = array("q")
        self._devices = array("H")
        self._first = array("q")
        self._last = array("q")
        self._gaps = array("b")
        self._gap_frames: dict[int, int] = {}  # gap message id -> frames it stands for
        self._head = 0
        self._device_names: list[str] = []
        self._device_index: dict[str, int] = {}
        self.bytes = 0
        self.next_id = 1
        self.committed = 0
        self._acked: set[int] = set()
        self._tail: deque[Message] = deque()
        self._tail_bytes = 0
        self.dropped_frames = 0
        self.dropped_readings = 0
        #: changes when messages were dropped: a sender must start again from first_id
        self.generation = 0
        self._dropped_upto = 0
        self._file = OutboxFile(path)
        self._durable = 0  # ops committed so far
        self._drop_op = 0  # the op of the last drop: no database reads before it is durable
        self._committed_event: asyncio.Event | None = None
        self._woken = False

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the database, load the index, start the writer thread."""
        self._committed_event = asyncio.Event()
        rows, stale = await asyncio.to_thread(self._file.load, self.format)
        for id_, ts, device, size, first, last, gap in rows:
            self._index(id_, ts, device, size, first, last, gap)
        if stale:
            log.warning("outbox %s: %d message(s) of another format dropped", self.path, stale)
            self.dropped_frames += stale
        if rows:
            self.next_id = rows[-1][0] + 1
            self.committed = rows[-1][0]
            log.info("outbox %s: %d message(s) from before, sent first", self.path, len(rows))
        self._enforce_limits()
        self._file.start(self._on_commit)

    async def close(self) -> None:
        """Commit what is pending and stop the writer thread."""
        await self._file.close()

    # -- the producer side: plain calls, no disk -------------------------------------

    def append(self, device: str, topic: str, payload: bytes, first: int, last: int) -> None:
        """Add one message (one device poll's readings ``first``..``last``)."""
        id_ = self.next_id
        self.next_id += 1
        ts = time.time()
        self._index(id_, ts, device, len(payload) + len(topic), first, last, 0)
        self._file.queue("insert", (id_, ts, device, first, last, self.format, topic, 0, payload))
        message = Message(id_, topic, payload)
        self._tail.append(message)
        self._tail_bytes += len(payload)
        while self._tail_bytes > TAIL_BYTES:
            self._tail_bytes -= len(self._tail.popleft().payload)
        self._enforce_limits()

    def _index(
        self, id_: int, ts: float, device: str, size: int, first: int, last: int, gap: int
    ) -> None:
        number = self._device_index.get(device)
        if number is None:
            number = self._device_index[device] = len(self._device_names)
            self._device_names.append(device)
        self._ids.append(id_)
        self._ts.append(ts)
        self._sizes.append(size)
        self._devices.append(number)
        self._first.append(first)
        self._last.append(last)
        self._gaps.append(gap)
        self.bytes += size

    # -- the sender side ----------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Messages in the outbox (not yet acknowledged by the broker)."""
        return len(self._ids) - self._head

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds since the oldest message in the outbox was added (0 if empty)."""
        if not self.depth:
            return 0.0
        return max(0.0, (now or time.time()) - self._ts[self._head])

    @property
    def first_id(self) -> int:
        """The id of the oldest message in the outbox (``next_id`` if empty)."""
        return self._ids[self._head] if self.depth else self.next_id

    async def read(self, cursor: int, generation: int) -> list[Message]:
        """Committed messages with ids from ``cursor`` on, in order; waits for one.

        Returns an empty list at once when ``generation`` is no longer the outbox's: messages
        were dropped, and the sender must start again from ``first_id`` (gap messages); and
        when :meth:`wake` was called while it waited.
        """
        assert self._committed_event is not None
        self._woken = False
        while generation == self.generation and not self._woken:
            cursor = max(cursor, self.first_id)
            if cursor <= self.committed:
                tail = self._tail
                if tail and tail[0].id <= cursor:
                    found = [m for m in tail if cursor <= m.id <= self.committed]
                    if found:
                        return found
                elif self._durable >= self._drop_op:
                    found = await asyncio.to_thread(self._file.read, cursor, self.committed)
                    if found and generation == self.generation:
                        return found
            self._committed_event.clear()
            await self._committed_event.wait()
        return []

    def wake(self) -> None:
        """End a :meth:`read` that waits for messages, with none (the sender has something
        else to send in between)."""
        self._woken = True
        if self._committed_event is not None:
            self._committed_event.set()

    def acked(self, id_: int, generation: int) -> None:
        """The broker acknowledged this message (read in ``generation``): it may leave."""
        if id_ < self.first_id or (generation != self.generation and id_ <= self._dropped_upto):
            return  # dropped meanwhile (its id may now be a gap message's), or a duplicate
        self._acked.add(id_)
        upto = 0
        while self.depth and self._ids[self._head] in self._acked:
            upto = self._ids[self._head]
            self._acked.discard(upto)
            self._pop_head()
        if upto:
            self._file.queue("delete", (upto,))
            self._trim_tail(upto)
            self._compact()

    def _pop_head(self) -> None:
        self.bytes -= self._sizes[self._head]
        if self._gaps[self._head]:
            self._gap_frames.pop(self._ids[self._head], None)
        self._head += 1

    def _compact(self) -> None:
        if self._head > 4096 and self._head * 2 > len(self._ids):
            columns = (self._ids, self._ts, self._sizes, self._devices, self._first, self._last)
            for column in (*columns, self._gaps):
                del column[: self._head]
            self._head = 0

    def _trim_tail(self, upto: int) -> None:
        while self._tail and self._tail[0].id <= upto:
            self._tail_bytes -= len(self._tail.popleft().payload)

    # -- limits -----------------------------------------------------------------------

    def _enforce_limits(self) -> None:
        """Drop the oldest messages while over a limit; leave one gap message per device."""
        if not self.depth:
            return
        too_old = time.time() - self.max_age
        dropped: dict[int, tuple[int, int, int, int]] = {}  # device -> id, since, until, n
        while self.depth > 1 and (self.bytes > self.max_bytes or self._ts[self._head] < too_old):
            h = self._head
            number, first, last = self._devices[h], self._first[h], self._last[h]
            _, since, _, frames = dropped.get(number, (0, first - 1, 0, 0))
            lost = self._gap_frames.pop(self._ids[h], 1) if self._gaps[h] else 1
            dropped[number] = (self._ids[h], min(since, first - 1), last, frames + lost)
            if not self._gaps[h]:  # a gap message dropped again was counted the first time
                self.dropped_readings += last - first + 1
                self.dropped_frames += 1
            self._pop_head()
        if not dropped:
            return
        upto = max(id_ for id_, _, _, _ in dropped.values())
        newest_ts = self._ts[self._head - 1]
        self._file.queue("drop", (upto,))
        # The gap messages take the place of the newest dropped message of their device:
        # they go back in front of the index (positions just freed), still in id order.
        gaps = sorted(dropped.items(), key=lambda item: item[1][0])
        self._head -= len(gaps)
        for offset, (number, (id_, since, until, frames)) in enumerate(gaps):
            device = self._device_names[number]
            topic, payload = self._gap(device, since, until, frames)
            h = self._head + offset
            size = len(payload) + len(topic)
            self._ids[h], self._ts[h], self._sizes[h] = id_, newest_ts, size
            self._devices[h], self._first[h], self._last[h] = number, since + 1, until
            self._gaps[h] = 1
            self._gap_frames[id_] = frames
            self.bytes += size
            row = (id_, newest_ts, device, since + 1, until, self.format, topic, 1, payload)
            self._file.queue("insert", row)
        self._drop_op = self._file.queued
        self._dropped_upto = max(self._dropped_upto, upto)
        self.generation += 1
        self._tail = deque(m for m in self._tail if m.id > upto)
        self._tail_bytes = sum(len(m.payload) for m in self._tail)
        # Once a warning; then quietly (the counters are in /metrics), or it floods the log.
        (log.warning if self.generation == 1 else log.debug)(
            "outbox over its limits: %d frame(s) dropped so far; consumers get a gap",
            self.dropped_frames,
        )

    @property
    def write_errors(self) -> int:
        """Failed attempts to write the file (each is tried again)."""
        return self._file.write_errors

    # -- the writer thread reports back ---------------------------------------------------

    def _on_commit(self, newest: int, done: int) -> None:
        self.committed = max(self.committed, newest)
        self._durable = max(self._durable, done)
        assert self._committed_event is not None
        self._committed_event.set()
