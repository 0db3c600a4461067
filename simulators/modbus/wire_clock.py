"""The RTU simulator's timing thread: answers written at their due time, in order."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Final


class WireClock(threading.Thread):
    """Writes each answer at its due time (``time.perf_counter``), in order.

    Why a thread: asyncio's timers have about a millisecond of granularity, but one
    character at 115200 baud lasts 95 µs. The thread sleeps until 200 µs before the due
    time, then spins on ``perf_counter`` and writes straight to the pty (whose
    ``write`` is thread-safe). It only waits while the event loop idles in ``epoll``
    without the GIL, as it does between a request and its answer; a busy loop makes
    answers late, never early. Waits are sliced so that stop and unplug are noticed
    within 50 ms; jobs of an old generation (before an unplug) are dropped.
    """

    SPIN: Final = 0.0002
    SLICE: Final = 0.05

    def __init__(self, write: Callable[[bytes], None], generation: Callable[[], int]) -> None:
        super().__init__(name="modbus-rtu-wire", daemon=True)
        self._write = write
        self._generation = generation
        self._jobs: queue.SimpleQueue[tuple[float, bytes, int] | None] = queue.SimpleQueue()
        self._stopping = threading.Event()

    def submit(self, due: float, data: bytes, generation: int) -> None:
        """Write ``data`` at ``due`` unless the generation has moved on by then."""
        self._jobs.put((due, data, generation))

    def stop(self) -> None:
        """Finish soon, dropping what is queued."""
        self._stopping.set()
        self._jobs.put(None)

    def run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._stopping.is_set():
                return
            due, data, generation = job
            if self._wait(due, generation):
                self._write(data)

    def _wait(self, due: float, generation: int) -> bool:
        while True:
            if self._stopping.is_set() or generation != self._generation():
                return False
            left = due - time.perf_counter()
            if left <= self.SPIN:
                break
            self._stopping.wait(min(left - self.SPIN, self.SLICE))
        while time.perf_counter() < due:
            pass
        return generation == self._generation() and not self._stopping.is_set()
