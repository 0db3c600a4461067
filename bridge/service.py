"""The running bridge: one poller per link, the store, the hub, and their lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bridge import wire
from bridge.config import BridgeConfig, LinkPlan
from bridge.hub import Hub
from bridge.logs import fields
from bridge.north.settings import mqtt_settings
from bridge.poller import DeviceRuntime, LinkPoller
from bridge.readings import PublishedReading
from bridge.states import Status
from bridge.store import Store, frame_of
from bridge.traffic import Traffic
from drivers.base import (
    BadValue,
    DeviceError,
    DeviceTimeout,
    Driver,
    DriverError,
    LinkError,
    ReadResult,
    Value,
)

if TYPE_CHECKING:
    from bridge.north.north import North

log = logging.getLogger(__name__)
audit = logging.getLogger("bridge.audit")


class UnknownDevice(KeyError):
    """No device has this id."""


class DeviceOffline(LinkError):
    """The device is offline: a write is not even tried."""


class WrittenNotReadBack(DeviceError):
    """The write was answered, but the read-back poll failed."""


def write_failure(exc: BaseException, device_id: str) -> tuple[int, str] | None:
    """The status and detail that answer a failed ``Bridge.write`` (None: not a write error).

    One mapping for every way in (REST, MQTT), so they answer alike.
    """
    if isinstance(exc, BadValue):
        return 422, str(exc)
    if isinstance(exc, DeviceTimeout):
        return 504, str(exc)
    if isinstance(exc, LinkError):
        return 503, f"device {device_id!r} is offline: {exc}"
    if isinstance(exc, DriverError):
        return 502, f"the device did not take the write: {exc}"
    return None


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel poller tasks and wait until every one has ended."""
    pending = set(tasks)
    while pending:
        # Cancel again until every task has ended: a cancellation that arrives together
        # with an answer can be lost inside a library (asyncio.wait_for before Python 3.12
        # returns the answer instead, and a library may use it), and the poller polls on.
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            log.error("a poller ended with an error: %s", result)


class Bridge:
    """Everything the API needs: devices' states, the store, the hub, and the pollers."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.settings = config.settings
        self.store = Store(config.devices, config.settings.history)
        self.hub = Hub(config.settings.subscriber_queue)
        self.devices: dict[str, DeviceRuntime] = {d.id: DeviceRuntime(d) for d in config.devices}
        self.pollers: list[LinkPoller] = []
        self._poller_of: dict[str, LinkPoller] = {}
        self.driver_of: dict[str, Driver[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._task_of: dict[LinkPoller, asyncio.Task[None]] = {}
        self.reload_lock = asyncio.Lock()
        self.traffic = Traffic()
        for link in config.links:
            self.add_poller(link)
        self.north: North | None = None
        mqtt = mqtt_settings(config.settings)
        if mqtt is not None:
            # Imported here: the MQTT client is loaded only by bridges that use it.
            from bridge.north.north import North

            self.north = North(mqtt, self)

    # -- lifecycle ------------------------------------------------------------------

    def add_poller(self, link: LinkPlan) -> LinkPoller:
        """A poller for one link of the device file, over the devices' runtimes (which must
        be in ``devices``); not started."""
        runtimes = [self.devices[d.id] for d in link.devices]
        poller = LinkPoller(link.key, link.driver.open_link(link.key, link.devices), runtimes, self)
        self.pollers.append(poller)
        self.traffic.add(poller.key, poller.link)
        for device in link.devices:
            self._poller_of[device.id] = poller
            self.driver_of[device.id] = link.driver
        return poller

    def start_poller(self, poller: LinkPoller) -> None:
        """Start polling one link (its task runs until stopped)."""
        task = asyncio.create_task(poller.run(), name=f"poll {poller.key}")
        self._tasks.append(task)
        self._task_of[poller] = task

    async def stop_pollers(self, pollers: list[LinkPoller]) -> None:
        """Stop these links' pollers and close their links; the rest poll on."""
        tasks = [self._task_of.pop(p) for p in pollers if p in self._task_of]
        await _cancel(tasks)
        for poller in pollers:
            self.pollers.remove(poller)
            self.traffic.remove(poller.key, poller.link)
        self._tasks = [t for t in self._tasks if t not in tasks]

    def forget(self, device_id: str) -> None:
        """Drop what the bridge knows of a device no longer in the file (its poller is
        stopped first)."""
        self._poller_of.pop(device_id, None)
        self.driver_of.pop(device_id, None)

    async def start(self) -> None:
        """Open the outbox and start north (if configured), then one task per link."""
        if self.north is not None:
            await self.north.start()
        for poller in self.pollers:
            self.start_poller(poller)

    @property
    def stopping(self) -> bool:
        """Whether the bridge has begun to stop (``/readyz`` then answers 503)."""
        return self._stopping

    def begin_stop(self) -> None:
        """Say the bridge is stopping, before anything closes: a server draining its
        requests calls this first so that readiness turns false at once."""
        self._stopping = True

    async def stop(self) -> None:
        """Stop polling and close every link."""
        self.begin_stop()
        await _cancel(self._tasks)
        self._tasks.clear()
        self._task_of.clear()
        if self.north is not None:
            await self.north.stop()

    @property
    def ready(self) -> bool:
        """Every device has been tried at least once, and the bridge is not stopping."""
        return not self.stopping and all(d.tried for d in self.devices.values())

    @property
    def alive(self) -> bool:
        """Every poller task is still running (they only end on shutdown)."""
        return all(not t.done() for t in self._tasks)

    # -- actions --------------------------------------------------------------------

    def device(self, device_id: str) -> DeviceRuntime:
        """The runtime of one device; UnknownDevice if none has this id."""
        try:
            return self.devices[device_id]
        except KeyError:
            raise UnknownDevice(device_id) from None

    def driver_counters(self, device_id: str) -> dict[str, int]:
        """The driver's own counts for a device (e.g. skipped lines), by name."""
        return dict(self._poller_of[device_id].link.counters(device_id))

    async def poll_now(self, device_id: str) -> list[PublishedReading]:
        """Poll one device through its link's queue; its readings after the poll.

        Raises DriverError (LinkError, DeviceTimeout, ...) if the device did not answer.
        """
        runtime = self.device(device_id)
        poller = self._poller_of[device_id]

        failure = await poller.submit(lambda: poller.poll(runtime))
        if failure is not None:
            raise failure
        return self.store.device_readings(device_id)

    async def write(
        self, device_id: str, point_id: str, value: Value, who: str
    ) -> PublishedReading:
        """Write a point through its link's queue, read the device back, return the reading.

        Never retried. Raises BadValue for a value the point cannot take (before anything
        is sent), DeviceOffline when the device is offline, and the driver's errors.
        Every attempt leaves one audit log line: who, what, old and new value, result.
        """
        runtime = self.device(device_id)
        poller = self._poller_of[device_id]
        old = self.store.latest(device_id, point_id)
        outcome = "refused"
        try:
            self.driver_of[device_id].check_write(runtime.config, point_id, value)
            if runtime.status == Status.OFFLINE:
                raise DeviceOffline(f"device {device_id!r} is offline: {runtime.last_error}")

            async def write_and_read_back() -> None:
                await poller.link.write(runtime.config, point_id, value)
                failure = await poller.poll(runtime)
                if failure is not None:
                    raise WrittenNotReadBack(f"written, but reading it back failed: {failure}")

            outcome = "failed"
            await poller.submit(write_and_read_back)
            outcome = "ok"
        except Exception as exc:
            outcome = f"{outcome}: {exc}"
            raise
        finally:
            new = self.store.latest(device_id, point_id)
            audit.info(
                "write by=%s device=%s point=%s value=%r old=%r new=%r result=%s",
                who, device_id, point_id, value, old.value, new.value, outcome,
                extra=fields(who=who, device=device_id, point=point_id, value=value,
                             old=old.value, new=new.value, result=outcome),
            )  # fmt: skip
        return new

    # -- Publisher: called by the pollers, never awaiting -----------------------------

    def poll_succeeded(self, device: DeviceRuntime, results: ReadResult, ts: float) -> None:
        self._publish(device.config.id, self.store.apply_poll(device.config.id, results, ts))

    def poll_failed(self, device: DeviceRuntime, error: str, ts: float) -> None:
        self._publish(device.config.id, self.store.mark_stale(device.config.id, error))

    def _publish(self, device_id: str, published: Sequence[PublishedReading]) -> None:
        """One poll's readings to the stream and north: the frame is encoded once for both."""
        if not published:
            return
        whole = frame_of(published) if self.north is not None or self.hub.subscribers else None
        self.hub.publish_readings(device_id, published, whole)
        if self.north is not None:
            self.north.readings(device_id, published, whole)

    def status_changed(self, device: DeviceRuntime) -> None:
        log.info("%s is %s", device.config.id, device.status)
        frame = self.status_frame(device)
        self.hub.publish_status(device.config.id, frame)
        if self.north is not None:
            self.north.status(device.config.id, frame)

    def status_frame(self, device: DeviceRuntime) -> dict[str, Any]:
        """The stream's ``status`` frame for a device."""
        return wire.status(
            device.config.id, device.status, device.last_error, device.last_error_at,
            device.last_success,
        )  # fmt: skip
