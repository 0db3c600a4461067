"""A simulated serial device on a pty: start and stop, unplug and replug, for every kind.

A :class:`PtyDevice` owns one :class:`~simulators.pty_port.PtyPort`. Subclasses say what
they do with the bytes a host writes (:meth:`PtyDevice._on_data`) and what they forget
when the host goes away or the port is pulled (:meth:`PtyDevice._reset_input`).
:meth:`~PtyDevice.unplug` makes the pty vanish like a pulled USB adapter and
:meth:`~PtyDevice.replug` brings a new one under the same link path; an answer still
waiting at an unplug belongs to an old ``generation`` and must not come out of the next
pty.
"""

from __future__ import annotations

from abc import abstractmethod

from simulators.lifecycle import Simulator
from simulators.pty_port import PtyPort


class PtyDevice(Simulator[str]):
    """A device behind a pty; :attr:`path` is what a host opens."""

    def __init__(self, link_dir: str | None, name: str) -> None:
        self._port = PtyPort(link_dir, name, on_data=self._on_data, on_hangup=self._reset_input)
        self._running = False
        #: bumped at every unplug and stop: answers of an older generation are dropped
        self._generation = 0

    @property
    def path(self) -> str:
        """The pty path a host opens (the link with ``link_dir``); RuntimeError before
        :meth:`start`."""
        return self._port.path

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> str:
        """Create the pty and start answering; returns :attr:`path`."""
        self._check_not_running()
        path = await self._port.open()
        self._running = True
        self._started()
        return path

    async def stop(self) -> None:
        """Remove the pty and drop unsent answers; idempotent."""
        running, self._running = self._running, False
        self._generation += 1
        if running:
            await self._stopping()
        await self._port.close()
        self._reset_input()

    def unplug(self) -> None:
        """Pull the adapter: see :meth:`PtyPort.unplug`; unsent answers are lost."""
        self._generation += 1
        self._port.unplug()
        self._reset_input()

    async def replug(self) -> str:
        """Plug back in (a new pty, the same link path); returns :attr:`path`."""
        if not self._running:
            raise RuntimeError(f"the {type(self).__name__} is not started")
        self.unplug()
        return await self._port.open()

    def _started(self) -> None:
        """Start what answers (tasks, threads); the pty is open."""

    async def _stopping(self) -> None:
        """Stop what :meth:`_started` started."""

    @abstractmethod
    def _on_data(self, data: bytes) -> None:
        """Bytes the host wrote, on the event loop."""

    @abstractmethod
    def _reset_input(self) -> None:
        """Forget a half-received request: the host went away or the port was pulled."""
