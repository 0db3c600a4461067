"""The contract every driver keeps, run against each driver and its simulator.

See drivers/base.py: a link opens, reads every point of a device, turns failures into the
DriverError family without retrying, costs at most one timeout for a device that does not
answer, and can be closed and reopened.
"""

from __future__ import annotations

import contextlib
import time

import pytest
from driver_cases import CASES, DriverCase

from drivers.base import DeviceTimeout, DriverError, LinkError, PointFailure


@pytest.fixture(params=CASES, ids=lambda case: case.name)
def case(request: pytest.FixtureRequest) -> DriverCase:
    found: DriverCase = request.param
    return found


async def test_reads_every_point(case: DriverCase) -> None:
    async with case.running() as sim:
        device = case.config(sim.device())
        link = case.driver.open_link(case.driver.link_key(device), [device])
        await link.open()
        try:
            assert link.is_open
            results = await link.read(device)
            assert dict(results) == case.expected
            point, value = sim.change()
            assert (await link.read(device))[point] == value
        finally:
            await link.close()
        assert not link.is_open


async def test_a_device_that_does_not_answer_costs_one_timeout(case: DriverCase) -> None:
    async with case.running() as sim:
        device = case.config(sim.device(timeout=0.3))
        link = case.driver.open_link(case.driver.link_key(device), [device])
        await link.open()
        try:
            sim.set_silent(True)
            started = time.monotonic()
            with pytest.raises(DeviceTimeout):
                await link.read(device)
            # every point of the device is behind the first request that failed
            assert time.monotonic() - started < 0.3 * 1.9
            sim.set_silent(False)
            assert dict(await link.read(device)) == case.expected
        finally:
            await link.close()


async def test_an_unanswered_device_does_not_disturb_its_link_neighbour(case: DriverCase) -> None:
    async with case.running() as sim:
        good = case.config(sim.device("good"))
        mute = case.config(sim.unanswered_device("mute", timeout=0.05))
        driver = case.driver
        assert driver.link_key(good) == driver.link_key(mute)
        link = driver.open_link(driver.link_key(good), [good, mute])
        await link.open()
        try:
            for _ in range(3):
                with pytest.raises(DriverError):
                    await link.read(mute)
                assert dict(await link.read(good)) == case.expected
        finally:
            await link.close()


async def test_a_link_whose_far_end_is_gone_raises_link_error_and_reopens(
    case: DriverCase,
) -> None:
    async with case.running() as sim:
        device = case.config(sim.device(timeout=0.2))
        link = case.driver.open_link(case.driver.link_key(device), [device])
        await link.open()
        await sim.stop()
        # the first read may still find the socket open; the second cannot
        with contextlib.suppress(DriverError):
            await link.read(device)
        with pytest.raises(DriverError):
            await link.read(device)
        await link.close()
        with pytest.raises(LinkError):
            await link.open()
        await link.close()  # closing twice is fine


async def test_no_value_is_ever_a_failure_in_disguise(case: DriverCase) -> None:
    async with case.running() as sim:
        device = case.config(sim.device())
        link = case.driver.open_link(case.driver.link_key(device), [device])
        await link.open()
        try:
            results = await link.read(device)
            assert not any(isinstance(v, PointFailure) for v in results.values())
            assert set(results) == {p.id for p in device.points}
        finally:
            await link.close()
