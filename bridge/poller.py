"""One poller task per link: polls its devices by deadline, one request at a time.

The poller owns time: intervals without drift, per-device backoff while a device fails,
reopening a lost link with capped, jittered backoff, and the on-demand jobs (``poll`` now,
writes) that wait their turn in the link's queue ahead of scheduled polls.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

from bridge.backoff import backoff
from bridge.readings import iso_time
from bridge.states import Status
from drivers.base import (
    DeviceConfig,
    DeviceError,
    DeviceTimeout,
    DriverError,
    Link,
    LinkError,
    ReadResult,
    failed_points,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: consecutive timeouts on a link, with no success between, after which it is reopened:
#: a connection that went half-open answers nothing until it is replaced.
REOPEN_AFTER_TIMEOUTS = 3

#: answered polls whose latency the recent p99 is taken over
RECENT_LATENCIES = 200


def p99(values: Iterable[float]) -> float:
    """The 99th percentile (nearest rank) of some values; at least one is needed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


class DeviceRuntime:
    """A device's live state as the poller sees it, and its poll statistics."""

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.status: Status = Status.STARTING
        self.tried = False
        self.last_success: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.failures_in_a_row = 0
        self.polls = 0
        self.poll_failures = 0
        self.point_failures = 0
        self.missed_cycles = 0
        self.last_latency: float | None = None
        self.latency_sum = 0.0
        self.answered = 0
        self.recent_latencies: deque[float] = deque(maxlen=RECENT_LATENCIES)
        self.next_due = 0.0

    def stats(self) -> dict[str, Any]:
        """Poll statistics for the API."""
        return {
            "polls": self.polls,
            "failures": self.poll_failures,
            "point_failures": self.point_failures,
            "failures_in_a_row": self.failures_in_a_row,
            "missed_cycles": self.missed_cycles,
            "last_latency_ms": None if self.last_latency is None else self.last_latency * 1000,
            "mean_latency_ms": self.latency_sum * 1000 / self.answered if self.answered else None,
            "last_error_at": iso_time(self.last_error_at) if self.last_error_at else None,
            "p99_latency_ms": p99(self.recent_latencies) * 1000 if self.recent_latencies else None,
        }


class Publisher(Protocol):
    """Where the poller hands results: the store and the hub, called without awaiting."""

    def poll_succeeded(self, device: DeviceRuntime, results: ReadResult, ts: float) -> Any: ...

    def poll_failed(self, device: DeviceRuntime, error: str, ts: float) -> None: ...

    def status_changed(self, device: DeviceRuntime) -> None: ...


class LinkPoller:
    """Owns one link and the devices on it; ``run`` is the link's only task."""

    def __init__(
        self, key: str, link: Link[Any], devices: list[DeviceRuntime], publisher: Publisher
    ):
        self.key = key
        self.link = link
        self.devices = devices
        self.publisher = publisher
        self._jobs: deque[tuple[Callable[[], Awaitable[Any]], asyncio.Future[Any]]] = deque()
        # set while ``run`` sleeps: a job that arrives wakes it early
        self._waiter: asyncio.Future[None] | None = None
        self._link_failures = 0
        self._timeouts_in_a_row = 0
        self._link_error: str | None = None
        self._base = min(d.config.interval for d in devices)
        self._cap = max(d.config.backoff_max for d in devices)

    async def run(self) -> None:
        """Poll forever; cancel to stop (the link is closed on the way out)."""
        now = time.monotonic()
        for device in self.devices:
            device.next_due = now
        try:
            while True:
                if not self.link.is_open:
                    if self._link_failures:
                        # A link that fails right after opening must not be reopened in a
                        # tight loop: wait as after a failed open (a job cuts it short).
                        await self._sleep(backoff(self._link_failures, self._base, self._cap))
                    if not await self._open():
                        continue
                if self._jobs:
                    action, future = self._jobs.popleft()
                    await self._run_job(action, future)
                    continue
                device = min(self.devices, key=lambda d: d.next_due)
                delay = device.next_due - time.monotonic()
                if delay > 0:
                    await self._sleep(delay)
                    continue
                await self.poll(device)
                self._schedule(device)
        finally:
            self._fail_jobs(LinkError("the bridge is shutting down"))
            await self.link.close()

    async def submit(self, action: Callable[[], Awaitable[T]]) -> T:
        """Run ``action`` on this link's task, ahead of scheduled polls, and return its result.

        Raises LinkError at once while the link is down.
        """
        if self._link_error is not None and not self.link.is_open:
            raise LinkError(self._link_error)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.append((action, future))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return await future

    async def poll(self, device: DeviceRuntime) -> DriverError | None:
        """Poll one device now and publish what it gave; the failure, if it did not answer."""
        started = time.monotonic()
        device.polls += 1
        try:
            results = await self.link.read(device.config)
        except Exception as exc:
            if not isinstance(exc, DriverError):
                # A driver bug: the device is failing, but the link's other devices and
                # every other link go on. The traceback is for whoever fixes the driver.
                log.exception("%s: the driver failed", device.config.id)
                exc = DeviceError(f"driver error: {type(exc).__name__}: {exc}")
            if isinstance(exc, LinkError):
                self._link_failures += 1
            if self._failed(device, exc):
                await self.link.close()
            return exc
        latency = time.monotonic() - started
        device.last_latency = latency
        device.latency_sum += latency
        device.recent_latencies.append(latency)
        device.answered += 1
        self._timeouts_in_a_row = 0
        self._link_failures = 0
        ts = time.time()
        failures = failed_points(results)
        device.point_failures += failures
        device.last_success = ts
        device.tried = True
        if device.failures_in_a_row:
            log.info("%s answers again", device.config.id)
        device.failures_in_a_row = 0
        self.publisher.poll_succeeded(device, results, ts)
        self._set_status(device, Status.DEGRADED if failures else Status.ONLINE)
        return None

    def _failed(self, device: DeviceRuntime, exc: DriverError) -> bool:
        """Record a failed poll; True if the link should be closed and reopened."""
        error = str(exc) or type(exc).__name__
        device.poll_failures += 1
        device.failures_in_a_row += 1
        device.tried = True
        device.last_error, device.last_error_at = error, time.time()
        # The first failure is worth a warning; its repeats would flood the log.
        level = logging.WARNING if device.failures_in_a_row == 1 else logging.DEBUG
        log.log(level, "%s: poll failed: %s", device.config.id, error)
        self.publisher.poll_failed(device, error, device.last_error_at)
        self._set_status(device, Status.OFFLINE)
        if isinstance(exc, LinkError):
            return True
        if isinstance(exc, DeviceTimeout):
            self._timeouts_in_a_row += 1
            # Only when no device on the link answers: a mute unit beside live ones is no
            # reason to drop their connection.
            if self._timeouts_in_a_row >= REOPEN_AFTER_TIMEOUTS * len(self.devices):
                self._timeouts_in_a_row = 0
                return True
        return False

    def _schedule(self, device: DeviceRuntime) -> None:
        config = device.config
        now = time.monotonic()
        if device.failures_in_a_row:
            wait = max(
                config.interval,
                backoff(device.failures_in_a_row, config.interval, config.backoff_max),
            )
            device.next_due = now + wait
            return
        # Keep the phase: the next deadline is a whole number of intervals after the last,
        # so that polls do not drift by the time each one takes.
        due = device.next_due + config.interval
        if due <= now:
            missed = math.floor((now - due) / config.interval) + 1
            device.missed_cycles += missed
            due += missed * config.interval
        device.next_due = due

    def _set_status(self, device: DeviceRuntime, status: Status) -> None:
        if device.status != status:
            device.status = status
            self.publisher.status_changed(device)

    async def _open(self) -> bool:
        try:
            await self.link.open()
        except DriverError as exc:
            self._link_failures += 1
            error = str(exc) or type(exc).__name__
            first = self._link_error is None
            self._link_error = error
            (log.warning if first else log.debug)("link %s cannot be opened: %s", self.key, error)
            for device in self.devices:
                device.polls += 1
                self._failed(device, LinkError(error))
            self._fail_jobs(LinkError(error))
            return False
        if self._link_error is not None:
            log.info("link %s is open again", self.key)
        self._link_error = None
        now = time.monotonic()
        for device in self.devices:
            device.next_due = min(device.next_due, now)
        return True

    async def _run_job(
        self, action: Callable[[], Awaitable[Any]], future: asyncio.Future[Any]
    ) -> None:
        if future.cancelled():
            return
        try:
            result = await action()
        except Exception as exc:  # handed to the waiting caller, who reports it
            if not future.cancelled():
                future.set_exception(exc)
        else:
            if not future.cancelled():
                future.set_result(result)

    def _fail_jobs(self, exc: Exception) -> None:
        while self._jobs:
            _, future = self._jobs.popleft()
            if not future.done():
                future.set_exception(exc)

    async def _sleep(self, delay: float) -> None:
        """Sleep until the delay passes or a job arrives."""
        if self._jobs:
            return
        # A future and a timer rather than wait_for on an event: wait_for makes a task
        # each time, and this runs once per poll.
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(delay, _wake_up, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _wake_up(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
