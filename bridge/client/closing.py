"""``async with`` for the client's closable objects: enter as itself, ``aclose`` on exit."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncClosing:
    """A base for objects with ``aclose``: ``async with obj:`` closes it on the way out."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
