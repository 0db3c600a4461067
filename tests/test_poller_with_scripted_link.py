"""The poller against a small scripted link: failures of drivers and links stay contained."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from conftest import eventually

from bridge.backoff import backoff
from bridge.poller import DeviceRuntime, LinkPoller
from drivers.base import DeviceConfig, Link, LinkError, PointConfig, ReadResult


class ScriptedLink(Link[DeviceConfig]):
    """A link whose devices answer by a function of the device id (for poller tests)."""

    def __init__(self, answer: Any, fail_open: bool = False) -> None:
        self.answer = answer
        self.fail_open = fail_open
        self.opens = 0
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    async def open(self) -> None:
        self.opens += 1
        if self.fail_open:
            raise LinkError("no such port")
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def read(self, device: DeviceConfig) -> ReadResult:
        result: ReadResult = self.answer(device.id)
        return result


class Recorder:
    def __init__(self) -> None:
        self.good: list[str] = []
        self.failed: list[tuple[str, str]] = []

    def poll_succeeded(self, device: DeviceRuntime, results: ReadResult, ts: float) -> None:
        self.good.append(device.config.id)

    def poll_failed(self, device: DeviceRuntime, error: str, ts: float) -> None:
        self.failed.append((device.config.id, error))

    def status_changed(self, device: DeviceRuntime) -> None:
        pass


def runtime(device_id: str, interval: float = 0.02) -> DeviceRuntime:
    return DeviceRuntime(
        DeviceConfig(id=device_id, driver="scripted", interval=interval, backoff_max=0.05,
                     points=[PointConfig(id="x")])
    )  # fmt: skip


def test_backoff_doubles_is_capped_and_jittered() -> None:
    assert 0.8 <= backoff(1, 1.0, 30.0) <= 1.2
    assert 3.2 <= backoff(3, 1.0, 30.0) <= 4.8
    assert all(backoff(n, 1.0, 30.0) <= 30.0 for n in (10, 100, 10_000))
    assert len({backoff(5, 1.0, 30.0) for _ in range(20)}) > 1


async def test_a_driver_bug_fails_its_device_only() -> None:
    def answer(device_id: str) -> ReadResult:
        if device_id == "buggy":
            raise RuntimeError("index out of range")
        return {"x": 1.0}

    buggy, fine = runtime("buggy"), runtime("fine")
    recorder = Recorder()
    poller = LinkPoller("scripted", ScriptedLink(answer), [buggy, fine], recorder)
    task = asyncio.create_task(poller.run())
    try:
        await eventually(lambda: recorder.good.count("fine") >= 5)
        assert buggy.status == "offline"
        assert buggy.last_error == "driver error: RuntimeError: index out of range"
        assert fine.status == "online"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_link_that_cannot_open_is_retried_with_backoff_not_in_a_loop() -> None:
    link = ScriptedLink(lambda _: {"x": 1.0}, fail_open=True)
    device = runtime("gone", interval=0.01)
    poller = LinkPoller("scripted", link, [device], Recorder())
    task = asyncio.create_task(poller.run())
    started = time.monotonic()
    try:
        await eventually(lambda: device.status == "offline")
        await eventually(lambda: time.monotonic() - started > 0.3)
        elapsed = time.monotonic() - started
        # backoff from 10 ms doubling to the 50 ms cap: a handful of tries, not thousands
        assert 3 <= link.opens <= elapsed / 0.04 + 3
        assert device.last_error == "no such port"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not link.is_open
