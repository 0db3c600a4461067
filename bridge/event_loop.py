"""The event loop the service runs on: uvloop's when it is installed, else asyncio's.

``BRIDGE_EVENT_LOOP=uvloop`` (the default) takes uvloop, an event loop on libuv with the
same interface as asyncio's and a cheaper callback, timer and socket path (at 100k
points/s, 10-15 % less of the bridge's CPU in the runs of docs/performance.md, within
that machine's noise in others). ``asyncio`` takes the
standard library's loop, as does a platform without uvloop (it is not built for Windows).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

EventLoop = Literal["uvloop", "asyncio"]


def run(main: Coroutine[Any, Any, T], loop: EventLoop = "uvloop") -> T:
    """Run ``main`` to its end on a new event loop of the chosen kind."""
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            logging.getLogger(__name__).info("uvloop is not installed: asyncio's event loop")
        else:
            return uvloop.run(main)
    return asyncio.run(main)
