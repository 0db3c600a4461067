"""The outbox's SQLite file: its schema, and the thread that writes it.

Writes are queued from the event loop as (kind, row) operations and committed by one
writer thread, everything that accumulated in one transaction (WAL mode). After each
commit the loop is told how far the file now reaches (``on_commit``). Reads back, for a
replay, go through a connection of their own.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

#: messages read from the database at once while replaying
READ_BATCH = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    device TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    format TEXT NOT NULL,
    topic TEXT NOT NULL,
    gap INTEGER NOT NULL,
    payload BLOB NOT NULL
)
"""

#: what an index row loaded from the file holds: id, ts, device, size, first, last, gap
IndexRow = tuple[int, float, str, int, int, int, int]
#: (newest committed id, operations now durable), called on the event loop
CommitCallback = Callable[[int, int], None]


class Message(NamedTuple):
    """One message bound for the broker, as kept in the outbox."""

    id: int
    topic: str
    payload: bytes


class OutboxFile:
    """The SQLite file behind an outbox, written by a thread of its own.

    Operations: ``insert`` a row (id, ts, device, first, last, format, topic, gap,
    payload); ``delete`` everything up to an id (acknowledged); ``drop`` everything up to
    an id (over the limits; gap messages are inserted after it in the same order).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.write_errors = 0
        #: operations queued so far (an operation's number is the count after queueing it)
        self.queued = 0
        # The writer thread's work: (kind, rows) in order; swapped out under the lock.
        self._ops: list[tuple[str, list[tuple[Any, ...]]]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_commit: CommitCallback | None = None

    def load(self, fmt: str) -> tuple[list[IndexRow], int]:
        """Create the table if needed; drop rows of another format; the index rows in order.

        Blocking (call it in a thread). Returns the rows and how many stale rows went.
        """
        db = self._connect()
        try:
            db.execute(_SCHEMA)
            stale = db.execute("DELETE FROM outbox WHERE format != ?", (fmt,)).rowcount
            rows = db.execute(
                "SELECT id, ts, device, length(payload) + length(topic), first_seq, last_seq, gap"
                " FROM outbox ORDER BY id"
            ).fetchall()
        finally:
            db.close()
        self._reader = self._connect()
        return rows, stale

    def start(self, on_commit: CommitCallback) -> None:
        """Start the writer thread; ``on_commit`` runs on the current loop after each commit."""
        self._loop = asyncio.get_running_loop()
        self._on_commit = on_commit
        self._thread = threading.Thread(target=self._write_loop, name="outbox", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Commit what is queued and stop the writer thread."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def queue(self, kind: str, row: tuple[Any, ...]) -> None:
        """Queue one operation for the writer; never touches the disk."""
        with self._lock:
            if self._ops and self._ops[-1][0] == kind:
                self._ops[-1][1].append(row)
            else:
                self._ops.append((kind, [row]))
            self.queued += 1
        self._wake.set()

    def read(self, cursor: int, committed: int) -> list[Message]:
        """Up to ``READ_BATCH`` committed messages with ids ``cursor``..``committed``.

        Blocking (call it in a thread).
        """
        assert self._reader is not None
        rows = self._reader.execute(
            "SELECT id, topic, payload FROM outbox WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?",
            (cursor, committed, READ_BATCH),
        ).fetchall()
        return [Message(i, t, bytes(p)) for i, t, p in rows]

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process being killed (it is in the OS's
        # cache); only a power cut may lose the last transactions, at a fraction of the cost.
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _write_loop(self) -> None:
        db = self._connect()
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                with self._lock:
                    ops, self._ops = self._ops, []
                    done = self.queued
                if ops:
                    self._commit(db, ops, done)
                # Checked after the commit too: a wake-up that came while committing may
                # have been cleared above, but ``_stopping`` is set before it.
                with self._lock:
                    idle = not self._ops
                if idle and self._stopping:
                    return
        finally:
            db.close()

    def _commit(
        self, db: sqlite3.Connection, ops: list[tuple[str, list[tuple[Any, ...]]]], done: int
    ) -> None:
        newest = 0
        while True:
            try:
                db.execute("BEGIN")
                for kind, rows in ops:
                    if kind == "insert":
                        db.executemany(
                            "INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                        )
                        newest = max(newest, max(r[0] for r in rows))
                    elif kind == "delete":
                        db.execute("DELETE FROM outbox WHERE id <= ?", (max(r[0] for r in rows),))
                    else:  # drop: the gap messages that replace some are inserted after
                        for (upto,) in rows:
                            db.execute("DELETE FROM outbox WHERE id <= ?", (upto,))
                db.execute("COMMIT")
                break
            except sqlite3.Error as exc:
                self.write_errors += 1
                log.error("outbox %s: cannot write (%s); trying again", self.path, exc)
                if db.in_transaction:
                    db.execute("ROLLBACK")
                time.sleep(1.0)
                if self._stopping and self.write_errors > 3:
                    return
        loop, on_commit = self._loop, self._on_commit
        if loop is not None and on_commit is not None and not loop.is_closed():
            loop.call_soon_threadsafe(on_commit, newest, done)
