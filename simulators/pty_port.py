"""A pseudo-terminal standing in for a serial port, for simulated serial devices.

The simulator holds the pty's master side; the host (the bridge, a test, a terminal
program) opens the slave side as it would open ``/dev/ttyUSB0``. A pty ignores baud
rates and parity and carries no timing: whatever the host writes arrives as one chunk.

Like a real port, the pty loses what is sent while nobody has it open: the simulator
keeps no slave descriptor of its own, detects "no host" from the master's hang-up
state, and drops output then; when a host closes the port, what it left unread is
flushed so that the next host does not read stale answers (a real UART driver discards
its input buffer on close). Linux only (``select.epoll``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import termios
import threading
import tty
from collections.abc import Callable
from typing import Final

#: output kept for a host that reads slowly; beyond it, bytes are dropped like an overrun
MAX_PENDING: Final = 64 * 1024
_READ_SIZE: Final = 4096


class PtyPort:
    """One pty: ``open()`` it, hand the host :attr:`path`, exchange bytes.

    ``on_data(bytes)`` receives what the host wrote (host → device), on the event loop;
    ``on_hangup()`` is called when a host that had exchanged bytes closes the port.
    :meth:`write` sends device → host; it never blocks and never raises, and it may be
    called from any thread (the RTU server writes from its timing thread).

    With ``link_dir``, :attr:`path` is a symbolic link ``link_dir/name`` to the current
    pty, so :meth:`unplug` and :meth:`replug` keep the name a host opens, like a USB
    adapter re-enumerating as the same ``/dev/ttyUSB0``. Without it, every (re)plug
    gives a new ``/dev/pts/N``.
    """

    def __init__(
        self,
        link_dir: str | None = None,
        name: str = "ttySIM0",
        *,
        on_data: Callable[[bytes], None] | None = None,
        on_hangup: Callable[[], None] | None = None,
    ) -> None:
        if not name or "/" in name:
            raise ValueError(f"name must be a plain file name, not {name!r}")
        self.link_dir = link_dir
        self.name = name
        self.on_data = on_data
        self.on_hangup = on_hangup
        #: bytes dropped because nobody listened, the port was unplugged, or overrun
        self.dropped = 0
        # _lock guards _master and _pending: write() may run on another thread, and a
        # closed descriptor number can be reused at once by an unrelated file
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave_path: str | None = None
        self._pending = bytearray()
        self._writer_armed = False
        self._host_seen = False
        self._epoll: select.epoll | None = None
        self._hangup_probe: select.poll | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    # ------------------------------------------------------------------------- state

    @property
    def path(self) -> str:
        """What a host opens: ``link_dir/name`` if given, else the current ``/dev/pts/N``.

        RuntimeError before the first :meth:`open`."""
        if self.link_dir is not None:
            return os.path.join(self.link_dir, self.name)
        if self._slave_path is None:
            raise RuntimeError("the pty is not open")
        return self._slave_path

    @property
    def device(self) -> str | None:
        """The current ``/dev/pts/N`` behind :attr:`path`; None while unplugged."""
        return self._slave_path if self._master is not None else None

    @property
    def plugged(self) -> bool:
        """True between :meth:`open` (or :meth:`replug`) and :meth:`unplug`."""
        return self._master is not None

    # ------------------------------------------------------------------------- life cycle

    async def open(self) -> str:
        """Create the pty (raw, no echo) and start reading; returns :attr:`path`."""
        if self._master is not None:
            raise RuntimeError("the pty is already open")
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        try:
            # the host normally sets raw mode itself (pyserial does); this covers hosts
            # that do not, such as `cat`, so that no byte is translated or echoed back
            tty.setraw(master)
            tty.setraw(slave)
            slave_path = os.ttyname(slave)
        except BaseException:
            os.close(master)
            raise
        finally:
            # keeping a slave descriptor would hide whether a host has the port open
            os.close(slave)
        os.set_blocking(master, False)
        # The master reports hang-up for as long as no host has the slave open, which a
        # level-triggered reader would see as endless readiness; edge-triggered epoll
        # wakes once per change (new data, a hang-up) instead.
        epoll = select.epoll()
        epoll.register(master, select.EPOLLIN | select.EPOLLET)
        probe = select.poll()
        probe.register(master, 0)  # reports POLLHUP only
        if self.link_dir is not None:
            try:
                _point_link(slave_path, os.path.join(self.link_dir, self.name))
            except BaseException:
                epoll.close()
                os.close(master)
                raise
        with self._lock:
            self._master = master
            self._pending.clear()
        self._slave_path = slave_path
        self._epoll = epoll
        self._hangup_probe = probe
        self._host_seen = False
        self._loop = loop
        self._loop_thread = threading.get_ident()
        loop.add_reader(epoll.fileno(), self._on_readable)
        return self.path

    def unplug(self) -> None:
        """Pull the adapter: the pty disappears (a host's open handle gets EOF or EIO),
        the link is removed (opening the path fails) and unsent output is dropped.
        Idempotent; call on the event loop's thread."""
        with self._lock:
            master, self._master = self._master, None
            self.dropped += len(self._pending)
            self._pending.clear()
        if master is None:
            return
        if self.link_dir is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.link_dir, self.name))
        loop, epoll = self._loop, self._epoll
        if loop is not None and not loop.is_closed():
            if epoll is not None:
                loop.remove_reader(epoll.fileno())
            if self._writer_armed:
                loop.remove_writer(master)
        self._writer_armed = False
        if epoll is not None:
            epoll.close()
        self._epoll = None
        self._hangup_probe = None
        os.close(master)

    async def replug(self) -> str:
        """Plug back in: a new pty, the link (if any) pointed at it; returns :attr:`path`."""
        self.unplug()
        return await self.open()

    async def close(self) -> None:
        """Unplug for good; idempotent."""
        self.unplug()

    # ------------------------------------------------------------------------- output

    def write(self, data: bytes) -> None:
        """Send ``data`` to the host without blocking; safe from any thread.

        Dropped (and counted in :attr:`dropped`) while unplugged or while no host has
        the port open; what the host does not read at once is buffered up to
        :data:`MAX_PENDING` bytes and written when it makes room.
        """
        if not data:
            return
        arm = False
        with self._lock:
            master = self._master
            if master is None or self._nobody_listens():
                self.dropped += len(data)
                return
            if self._pending:
                self._buffer(data)
                return
            try:
                sent = os.write(master, data)
            except BlockingIOError:
                sent = 0
            except OSError:  # EIO: the host hung up just now
                self.dropped += len(data)
                return
            self._host_seen = True
            if sent < len(data):
                self._buffer(data[sent:])
                arm = not self._writer_armed
                self._writer_armed = True
        if arm:
            self._call_in_loop(self._arm_writer)

    def _buffer(self, data: bytes) -> None:
        room = MAX_PENDING - len(self._pending)
        self._pending += data[:room]
        self.dropped += max(0, len(data) - room)

    def _nobody_listens(self) -> bool:
        probe = self._hangup_probe
        return probe is None or any(mask & select.POLLHUP for _, mask in probe.poll(0))

    def _call_in_loop(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            callback()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to do
                loop.call_soon_threadsafe(callback)

    def _arm_writer(self) -> None:
        with self._lock:
            master = self._master
            if master is None or self._loop is None:
                self._writer_armed = False
                return
            self._loop.add_writer(master, self._on_writable)

    def _on_writable(self) -> None:
        done = False
        with self._lock:
            master = self._master
            if master is None:
                return
            if self._nobody_listens():
                self.dropped += len(self._pending)
                self._pending.clear()
            if self._pending:
                try:
                    sent = os.write(master, self._pending)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    sent = len(self._pending)
                    self.dropped += sent
                del self._pending[:sent]
            done = not self._pending
            if done:
                self._writer_armed = False
        if done and self._loop is not None:
            self._loop.remove_writer(master)

    # ------------------------------------------------------------------------- input

    def _on_readable(self) -> None:
        epoll, master = self._epoll, self._master
        if epoll is None or master is None:
            return
        epoll.poll(0)  # consume the edge; readiness is found by reading until empty
        chunks: list[bytes] = []
        hung_up = False
        while True:
            try:
                data = os.read(master, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError:  # EIO: no host has the slave open (any more)
                hung_up = True
                break
            if not data:
                hung_up = True
                break
            chunks.append(data)
        if chunks:
            self._host_seen = True
            if self.on_data is not None:
                self.on_data(b"".join(chunks))
        if hung_up and self._host_seen:
            self._host_seen = False
            self._discard_unread()
            if self.on_hangup is not None:
                self.on_hangup()

    def _discard_unread(self) -> None:
        """Flush what the departed host left unread, as a UART driver does on close.

        Done by opening the slave for a moment; its close raises one more hang-up
        edge, which finds ``_host_seen`` false and so does not come back here."""
        with self._lock:
            self.dropped += len(self._pending)
            self._pending.clear()
            if self._slave_path is None or not self._nobody_listens():
                return  # a host is back already: what is queued may be its answer
            try:
                fd = os.open(self._slave_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            except OSError:
                return
            try:
                termios.tcflush(fd, termios.TCIFLUSH)
            except termios.error:
                pass
            finally:
                os.close(fd)


def _point_link(target: str, link: str) -> None:
    """Make ``link`` a symbolic link to ``target``, replacing any old one atomically."""
    temporary = f"{link}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    os.symlink(target, temporary)
    try:
        os.replace(temporary, link)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
