"""The functional suite: what a user of the bridge sees, the same for every driver.

One set of test cases, inherited once per driver (as pyatv does for its protocols): a
bridge polls a device on the driver's simulator, and the suite checks readings over REST,
a write read back, the WebSocket stream, a device going offline (readings turn stale) and
coming back, and the HTTP status codes of each case. A driver is added to the suite by a
:class:`~driver_cases.DriverCase` and a subclass in ``test_functional.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import aiohttp
import pytest
from conftest import BridgeFactory, eventually
from driver_cases import DriverCase, Running

WRITER = "agent:s3cret"
AUTH = {"Authorization": "Bearer s3cret"}
DEVICE = "dev"
Frame = dict[str, Any]


async def answer(
    session: aiohttp.ClientSession, method: str, path: str, status: int, **kwargs: Any
) -> Any:
    """The JSON body of a request whose status must be ``status`` (a problem unless 200)."""
    async with session.request(method, path, **kwargs) as response:
        body = await response.json(content_type=None)
        assert response.status == status, body
        wanted = "application/json" if status == 200 else "application/problem+json"
        assert response.content_type == wanted
        return body


async def readings(session: aiohttp.ClientSession) -> dict[str, Frame]:
    body = await answer(session, "GET", f"api/v1/readings?device={DEVICE}", 200)
    return {r["point"]: r for r in body["readings"]}


async def status(session: aiohttp.ClientSession) -> str:
    return str((await answer(session, "GET", f"api/v1/devices/{DEVICE}", 200))["status"])


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> Frame:
    frame: Frame = await ws.receive_json(timeout=5)
    return frame


async def frames_until(
    ws: aiohttp.ClientWebSocketResponse, done: Callable[[Frame], bool]
) -> list[Frame]:
    """Frames up to and including the first for which ``done`` holds."""
    frames = [await next_frame(ws)]
    while not done(frames[-1]):
        frames.append(await next_frame(ws))
    return frames


def values_of(frames: list[Frame]) -> dict[str, tuple[Any, str]]:
    """The newest (value, quality) of every point in these frames."""
    return {
        r["point"]: (r["value"], r["quality"])
        for frame in frames
        if frame["type"] in ("snapshot", "readings")
        for r in frame["readings"]
    }


class FunctionalSuite:
    """Inherit with ``case`` set to a driver's case; every test runs on that driver."""

    case: ClassVar[DriverCase]

    @pytest.fixture
    async def sim(self) -> AsyncIterator[Running]:
        async with self.case.running() as running:
            yield running

    @pytest.fixture
    async def bridge(self, sim: Running, bridge_factory: BridgeFactory) -> aiohttp.ClientSession:
        """A session on a bridge polling the device, writes enabled, once all is good."""
        _, session = await bridge_factory([sim.device(DEVICE)], write_token=WRITER)

        async def all_good() -> bool:
            shown = await readings(session)
            return bool(shown) and all(r["quality"] == "good" for r in shown.values())

        await eventually(all_good)
        return session

    # ----------------------------------------------------------------------- reads

    async def test_readings_over_rest_show_every_point_and_follow_the_device(
        self, sim: Running, bridge: aiohttp.ClientSession
    ) -> None:
        shown = await readings(bridge)
        assert {p: r["value"] for p, r in shown.items()} == self.case.expected
        point, value = sim.change()

        async def changed() -> bool:
            path = f"api/v1/devices/{DEVICE}/points/{point}"
            return bool((await answer(bridge, "GET", path, 200))["value"] == value)

        await eventually(changed)
        body = await answer(bridge, "POST", f"api/v1/devices/{DEVICE}/poll", 200)
        assert {r["point"]: r["value"] for r in body["readings"]}[point] == value

    # ----------------------------------------------------------------------- writes

    async def test_a_write_reaches_the_device_and_its_reading_is_the_answer(
        self, sim: Running, bridge: aiohttp.ClientSession
    ) -> None:
        point, value, _ = self.case.writable
        path = f"api/v1/devices/{DEVICE}/points/{point}"
        reading = await answer(bridge, "PUT", path, 200, json={"value": value}, headers=AUTH)
        assert (reading["point"], reading["value"], reading["quality"]) == (point, value, "good")
        assert sim.held(point) == value
        assert (await readings(bridge))[point]["value"] == value

    async def test_writes_the_point_cannot_take_are_refused_and_nothing_changes(
        self, sim: Running, bridge: aiohttp.ClientSession
    ) -> None:
        point, _, beyond = self.case.writable
        before = sim.held(point)
        base = f"api/v1/devices/{DEVICE}/points"
        await answer(bridge, "PUT", f"{base}/{point}", 422, json={"value": beyond}, headers=AUTH)
        await answer(bridge, "PUT", f"{base}/{point}", 422, json={"value": "x"}, headers=AUTH)
        await answer(bridge, "PUT", f"{base}/{point}", 401, json={"value": beyond})
        await answer(
            bridge, "PUT", f"{base}/{self.case.read_only}", 403, json={"value": 1}, headers=AUTH
        )
        await answer(bridge, "PUT", f"{base}/nope", 404, json={"value": 1}, headers=AUTH)
        await answer(bridge, "PUT", f"{base}/{point}", 400, data=b"{", headers=AUTH)
        assert sim.held(point) == before

    # ----------------------------------------------------------------------- stream

    async def test_the_stream_sends_a_snapshot_then_the_changes(
        self, sim: Running, bridge: aiohttp.ClientSession
    ) -> None:
        async with bridge.ws_connect(f"api/v1/stream?device={DEVICE}") as ws:
            assert (await next_frame(ws))["type"] == "hello"
            snapshot = await next_frame(ws)
            assert snapshot["type"] == "snapshot"
            expected = {p: (v, "good") for p, v in self.case.expected.items()}
            assert values_of([snapshot]) == expected
            point, value = sim.change()
            frames = await frames_until(
                ws, lambda f: values_of([f]).get(point, (None, ""))[0] == value
            )
            assert all(f["type"] == "readings" and f["readings"] for f in frames)
            assert all(r["device"] == DEVICE for f in frames for r in f["readings"])

    # ----------------------------------------------------------------------- stale, recovery

    async def test_a_device_that_stops_answering_goes_offline_stale_and_comes_back_good(
        self, sim: Running, bridge: aiohttp.ClientSession
    ) -> None:
        expected = self.case.expected
        async with bridge.ws_connect(f"api/v1/stream?device={DEVICE}") as ws:
            assert (await next_frame(ws))["type"] == "hello"
            assert (await next_frame(ws))["type"] == "snapshot"

            sim.set_silent(True)
            frames = await frames_until(ws, lambda f: f["type"] == "status")
            assert (frames[-1]["device"], frames[-1]["status"]) == (DEVICE, "offline")
            assert frames[-1]["error"]
            assert values_of(frames) == {p: (v, "stale") for p, v in expected.items()}
            shown = await readings(bridge)
            assert {p: (r["value"], r["quality"]) for p, r in shown.items()} == {
                p: (v, "stale") for p, v in expected.items()
            }
            assert all(r["error"] for r in shown.values())
            assert await status(bridge) == "offline"
            point, value, _ = self.case.writable
            path = f"api/v1/devices/{DEVICE}/points/{point}"
            # a write is refused while the device is offline; a poll now is tried, and times out
            await answer(bridge, "PUT", path, 503, json={"value": value}, headers=AUTH)
            await answer(bridge, "POST", f"api/v1/devices/{DEVICE}/poll", 504)

            sim.set_silent(False)
            frames = await frames_until(ws, lambda f: f["type"] == "status")
            assert (frames[-1]["device"], frames[-1]["status"]) == (DEVICE, "online")
            assert values_of(frames) == {p: (v, "good") for p, v in expected.items()}
        assert await status(bridge) == "online"

    async def test_a_device_whose_link_is_gone_goes_offline(
        self, sim: Running, bridge: aiohttp.ClientSession
    ) -> None:
        await sim.stop()

        async def offline() -> bool:
            return await status(bridge) == "offline"

        await eventually(offline)
        shown = await readings(bridge)
        assert {r["quality"] for r in shown.values()} == {"stale"}
        await answer(bridge, "GET", "healthz", 200)

    # ----------------------------------------------------------------------- status codes

    async def test_an_unknown_device_or_point_is_a_404_problem(
        self, bridge: aiohttp.ClientSession
    ) -> None:
        body = await answer(bridge, "GET", "api/v1/devices/nope", 404)
        assert DEVICE in body["detail"]
        await answer(bridge, "GET", f"api/v1/devices/{DEVICE}/points/nope", 404)
        await answer(bridge, "GET", f"api/v1/devices/{DEVICE}/points/nope/history", 404)
        await answer(bridge, "POST", "api/v1/devices/nope/poll", 404)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await bridge.ws_connect("api/v1/stream?device=nope")
        assert refused.value.status == 404
