"""The one start/stop shape every simulator has.

``address = await sim.start()`` starts serving and returns what a client connects to (a
TCP port, a pty path); ``await sim.stop()`` stops, idempotently; ``async with sim``
starts it unless it is already running and stops it on exit. Starting twice is a
RuntimeError.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Generic, Self, TypeVar

AddressT = TypeVar("AddressT")


class Simulator(ABC, Generic[AddressT]):
    """A simulated device (or bus of devices) that serves while it runs."""

    @property
    @abstractmethod
    def running(self) -> bool:
        """Between :meth:`start` and :meth:`stop`."""

    @abstractmethod
    async def start(self) -> AddressT:
        """Start serving; returns what a client connects to. RuntimeError when running."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop serving and release the address; idempotent."""

    def _check_not_running(self) -> None:
        if self.running:
            raise RuntimeError(f"the {type(self).__name__} is already started")

    async def __aenter__(self) -> Self:
        if not self.running:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
