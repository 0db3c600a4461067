"""The WebSocket stream (README, "The WebSocket stream"), against a live bridge polling a real Modbus simulator."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from conftest import BOILER_POINTS, BridgeFactory, all_good, eventually, get_json, tcp_device

from simulators.modbus import ModbusSimulator
from simulators.waveforms import Sine

BOILER_VALUES = {
    "temperature": 21.5,
    "pressure": 1.52,
    "pump_on": True,
    "setpoint": 65.0,
    "alarm": True,
    "model": "BOILER-1",
}
#: a second device on the same endpoint reading two of the boiler's registers
TWIN_POINTS = [p for p in BOILER_POINTS if p["id"] in ("temperature", "pressure")]
#: seconds to wait for a frame that must come
FRAME_TIMEOUT = 2.0

Frame = dict[str, Any]


def set_temperature(sim: Any, value: float) -> None:
    sim.units[1].set_value("holding", 0, "float32", value)


def set_pressure(sim: Any, raw: int) -> None:
    sim.units[1].set_value("input", 10, "int16", raw)


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> Frame:
    message = await ws.receive(timeout=FRAME_TIMEOUT)
    assert message.type == WSMsgType.TEXT, message
    frame: Frame = json.loads(message.data)
    return frame


async def frames_until(ws: aiohttp.ClientWebSocketResponse, last: Any) -> list[Frame]:
    """Frames received up to and including the first for which ``last(frame)`` is true."""
    frames = []
    while True:
        frame = await next_frame(ws)
        frames.append(frame)
        if last(frame):
            return frames


async def seen(ws: aiohttp.ClientWebSocketResponse, *wanted: tuple[str, str, Any]) -> list[Frame]:
    """Frames up to the one in which every (device, point, value) has been seen."""
    missing = set(wanted)

    def done(frame: Frame) -> bool:
        for r in frame.get("readings", ()) if frame["type"] == "readings" else ():
            missing.discard((r["device"], r["point"], r["value"]))
        return not missing

    return await frames_until(ws, done)


def readings_of(frames: list[Frame]) -> list[Frame]:
    return [r for f in frames if f["type"] == "readings" for r in f["readings"]]


async def connect(
    session: aiohttp.ClientSession, query: str = ""
) -> tuple[aiohttp.ClientWebSocketResponse, Frame]:
    """A stream connection and its hello frame."""
    ws = await session.ws_connect("api/v1/stream" + query)
    hello = await next_frame(ws)
    assert hello["type"] == "hello"
    return ws, hello


async def published(session: aiohttp.ClientSession, device: str, point: str, value: Any) -> int:
    """Wait until REST shows this value for the point; the seq then."""

    async def check() -> int | None:
        body = await get_json(session, "api/v1/readings")
        latest = {(r["device"], r["point"]): r["value"] for r in body["readings"]}
        return int(body["seq"]) if latest[(device, point)] == value else None

    seq: int = await eventually(check)
    return seq


async def two_polls_later(session: aiohttp.ClientSession, device: str, point: str) -> None:
    """Wait until the device has been polled twice more (so once after anything done now)."""
    path = f"api/v1/devices/{device}/points/{point}"
    for _ in range(2):
        before = (await get_json(session, path))["ts"]

        async def moved(before: str = before) -> bool:
            return bool((await get_json(session, path))["ts"] > before)

        await eventually(moved)


# --------------------------------------------------------------------------- hello, snapshot


async def test_hello_comes_first_then_a_snapshot_of_every_point(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    # one poll, then none for a minute: the snapshot must equal REST's readings, ts too
    _, session = await bridge_factory([tcp_device("boiler", port, interval=60.0)])
    await eventually(lambda: all_good(session))
    rest = await get_json(session, "api/v1/readings")

    ws, hello = await connect(session)
    assert hello == {"type": "hello", "version": 1, "boot": rest["boot"], "seq": rest["seq"]}
    snapshot = await next_frame(ws)
    assert snapshot["type"] == "snapshot"
    assert snapshot["readings"] == rest["readings"]
    assert {r["point"]: r["value"] for r in snapshot["readings"]} == BOILER_VALUES
    await ws.close()


async def test_a_snapshot_taken_before_the_first_poll_shows_points_not_read_yet(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    sim.delay = 0.1  # the first poll is still on its way when the client connects
    _, session = await bridge_factory([tcp_device("boiler", port, timeout=1.0)])
    ws, hello = await connect(session)
    assert hello["seq"] == 0
    snapshot = await next_frame(ws)
    assert {(r["quality"], r["value"], r["seq"]) for r in snapshot["readings"]} == {
        ("bad", None, 0)
    }
    # then the first poll arrives as readings
    frames = await seen(ws, *(("boiler", p, v) for p, v in BOILER_VALUES.items()))
    assert all(r["quality"] == "good" for r in readings_of(frames))
    await ws.close()


# --------------------------------------------------------------------------- live readings


async def test_a_change_sends_only_the_changed_points_beyond_their_deadband(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    points = [{**p, "deadband": 1.0} if p["id"] == "temperature" else p for p in BOILER_POINTS]
    _, session = await bridge_factory([tcp_device("boiler", port, points=points)])
    await eventually(lambda: all_good(session))
    ws, _ = await connect(session)
    assert (await next_frame(ws))["type"] == "snapshot"

    set_temperature(sim, 21.75)  # within the deadband of 21.5: not sent
    await two_polls_later(session, "boiler", "temperature")
    set_pressure(sim, 160)
    frame = await next_frame(ws)
    assert frame["type"] == "readings"
    assert [(r["point"], r["value"], r["quality"]) for r in frame["readings"]] == [
        ("pressure", 1.6, "good")
    ]

    set_temperature(sim, 23.0)  # beyond it
    frame = await next_frame(ws)
    assert [(r["point"], r["value"]) for r in frame["readings"]] == [("temperature", 23.0)]
    reading = frame["readings"][0]
    assert reading["device"] == "boiler"
    assert reading["unit"] == "°C"
    assert reading["seq"] == (await get_json(session, "api/v1/readings"))["seq"]

    set_temperature(sim, 24.5)
    set_pressure(sim, 170)
    frames = await seen(ws, ("boiler", "temperature", 24.5), ("boiler", "pressure", 1.7))
    # one poll's changes travel together (two frames only if a poll was under way)
    assert len(frames) <= 2
    assert sorted((r["point"], r["value"]) for r in readings_of(frames)) == [
        ("pressure", 1.7),
        ("temperature", 24.5),
    ]
    await ws.close()


async def test_status_frames_when_the_device_goes_offline_and_comes_back(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    await eventually(lambda: all_good(session))
    ws, _ = await connect(session)
    assert (await next_frame(ws))["type"] == "snapshot"

    sim.silent = True
    # one poll's readings, then the status they brought
    frames = await frames_until(ws, lambda f: f["type"] == "status")
    status = frames[-1]
    assert (status["device"], status["status"]) == ("boiler", "offline")
    assert "did not answer" in status["error"]
    assert isinstance(status["ts"], str)
    assert {(r["point"], r["quality"], r["value"]) for r in readings_of(frames)} == {
        (p, "stale", v) for p, v in BOILER_VALUES.items()
    }
    assert all("did not answer" in r["error"] for r in readings_of(frames))

    sim.silent = False
    frames = await frames_until(ws, lambda f: f["type"] == "status")
    status = frames[-1]
    assert (status["device"], status["status"]) == ("boiler", "online")
    assert "error" not in status
    assert {(r["point"], r["quality"], r["value"]) for r in readings_of(frames)} == {
        (p, "good", v) for p, v in BOILER_VALUES.items()
    }
    await ws.close()


# --------------------------------------------------------------------------- filters


async def test_filters_restrict_what_arrives(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    _, session = await bridge_factory(
        [tcp_device("boiler", port), tcp_device("twin", port, points=TWIN_POINTS)]
    )
    await eventually(lambda: all_good(session))
    everything, _ = await connect(session)
    by_device, _ = await connect(session, "?device=boiler")
    by_point, _ = await connect(session, "?point=twin/temperature")
    by_bare_point, _ = await connect(session, "?device=twin&point=pressure")
    for ws in (everything, by_device, by_point, by_bare_point):
        assert (await next_frame(ws))["type"] == "snapshot"

    # Each change is seen in full on the unfiltered stream before the next is made, so a
    # frame that leaked through a filter would arrive before the filtered stream's last.
    set_temperature(sim, 30.0)
    await seen(everything, ("boiler", "temperature", 30.0), ("twin", "temperature", 30.0))
    set_pressure(sim, 160)
    await seen(everything, ("boiler", "pressure", 1.6), ("twin", "pressure", 1.6))
    set_temperature(sim, 31.0)
    set_pressure(sim, 170)
    await seen(
        everything,
        *(
            (d, p, v)
            for d in ("boiler", "twin")
            for p, v in (("temperature", 31.0), ("pressure", 1.7))
        ),
    )

    frames = await seen(by_device, ("boiler", "temperature", 31.0), ("boiler", "pressure", 1.7))
    assert {r["device"] for r in readings_of(frames)} == {"boiler"}
    assert [(r["point"], r["value"]) for r in readings_of(frames)][:2] == [
        ("temperature", 30.0),
        ("pressure", 1.6),
    ]
    frames = await seen(by_point, ("twin", "temperature", 31.0))
    assert [(r["device"], r["point"], r["value"]) for r in readings_of(frames)] == [
        ("twin", "temperature", 30.0),
        ("twin", "temperature", 31.0),
    ]
    assert all(f["type"] == "readings" for f in frames)
    frames = await seen(by_bare_point, ("twin", "pressure", 1.7))
    assert [(r["device"], r["point"], r["value"]) for r in readings_of(frames)] == [
        ("twin", "pressure", 1.6),
        ("twin", "pressure", 1.7),
    ]
    for ws in (everything, by_device, by_point, by_bare_point):
        await ws.close()


async def test_a_filter_s_snapshot_holds_only_matching_points(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory(
        [tcp_device("boiler", port), tcp_device("twin", port, points=TWIN_POINTS)]
    )
    await eventually(lambda: all_good(session))
    for query, expected in (
        ("?device=twin", [("twin", "temperature"), ("twin", "pressure")]),
        ("?point=boiler/model&point=twin/pressure", [("boiler", "model"), ("twin", "pressure")]),
        ("?point=temperature", [("boiler", "temperature"), ("twin", "temperature")]),
    ):
        ws, _ = await connect(session, query)
        snapshot = await next_frame(ws)
        assert snapshot["type"] == "snapshot"
        assert [(r["device"], r["point"]) for r in snapshot["readings"]] == expected, query
        await ws.close()


async def test_subscribe_replaces_the_filter_and_brings_a_new_snapshot(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    _, session = await bridge_factory(
        [tcp_device("boiler", port), tcp_device("twin", port, points=TWIN_POINTS)]
    )
    await eventually(lambda: all_good(session))
    everything, _ = await connect(session)
    ws, _ = await connect(session, "?device=boiler")
    assert (await next_frame(everything))["type"] == "snapshot"
    snapshot = await next_frame(ws)
    assert {r["device"] for r in snapshot["readings"]} == {"boiler"}

    await ws.send_json({"op": "subscribe", "points": ["twin/pressure"]})
    snapshot = await next_frame(ws)
    assert snapshot["type"] == "snapshot"
    assert [(r["device"], r["point"], r["value"]) for r in snapshot["readings"]] == [
        ("twin", "pressure", 1.52)
    ]

    set_temperature(sim, 30.0)
    set_pressure(sim, 160)
    await seen(
        everything,
        *((d, p, v) for d in ("boiler", "twin") for p, v in (("temperature", 30.0),
                                                             ("pressure", 1.6))),
    )  # fmt: skip
    set_pressure(sim, 170)
    await seen(everything, ("boiler", "pressure", 1.7), ("twin", "pressure", 1.7))
    frames = await seen(ws, ("twin", "pressure", 1.7))
    assert [(r["device"], r["point"], r["value"]) for r in readings_of(frames)] == [
        ("twin", "pressure", 1.6),
        ("twin", "pressure", 1.7),
    ]

    # an empty subscription is everything again
    await ws.send_json({"op": "subscribe", "devices": [], "points": []})
    snapshot = await next_frame(ws)
    assert snapshot["type"] == "snapshot"
    assert len(snapshot["readings"]) == len(BOILER_POINTS) + len(TWIN_POINTS)
    await ws.send_json({"op": "subscribe", "devices": ["nope"]})
    error = await next_frame(ws)
    assert error["type"] == "error"
    assert "nope" in error["detail"]
    await everything.close()
    await ws.close()


# --------------------------------------------------------------------------- resuming


async def test_resuming_with_since_replays_exactly_what_was_missed_in_order(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    await eventually(lambda: all_good(session))
    ws, hello = await connect(session)
    boot, since = hello["boot"], hello["seq"]
    await ws.close()

    for value in (30.0, 31.0, 32.0):
        set_temperature(sim, value)
        await published(session, "boiler", "temperature", value)
    set_pressure(sim, 160)
    last = await published(session, "boiler", "pressure", 1.6)

    ws, hello = await connect(session, f"?since={since}&boot={boot}")
    assert (hello["boot"], hello["seq"]) == (boot, last)
    frames = await frames_until(ws, lambda f: f["readings"][-1]["seq"] >= last)
    assert all(f["type"] == "readings" for f in frames)  # no snapshot when resuming
    replayed = readings_of(frames)
    assert [r["seq"] for r in replayed] == list(range(since + 1, last + 1))
    assert [(r["point"], r["value"]) for r in replayed] == [
        ("temperature", 30.0),
        ("temperature", 31.0),
        ("temperature", 32.0),
        ("pressure", 1.6),
    ]
    # and live readings follow the replay
    set_temperature(sim, 33.0)
    frame = await next_frame(ws)
    assert [(r["point"], r["value"], r["seq"]) for r in frame["readings"]] == [
        ("temperature", 33.0, last + 1)
    ]
    await ws.close()

    # resuming with a filter replays only the matching readings
    ws, _ = await connect(session, f"?since={since}&boot={boot}&point=boiler/temperature")
    frames = await frames_until(ws, lambda f: f["readings"][-1]["value"] == 33.0)
    assert [r["value"] for r in readings_of(frames)] == [30.0, 31.0, 32.0, 33.0]
    await ws.close()


async def test_resuming_after_a_restart_gives_a_gap_and_a_snapshot(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    await eventually(lambda: all_good(session))
    ws, hello = await connect(session, "?since=3&boot=0123456789abcdef")
    assert hello["boot"] != "0123456789abcdef"
    gap = await next_frame(ws)
    assert gap["type"] == "gap"
    assert gap["since"] == 3
    snapshot = await next_frame(ws)
    assert snapshot["type"] == "snapshot"
    assert {r["point"]: r["value"] for r in snapshot["readings"]} == BOILER_VALUES
    await ws.close()


async def test_resuming_from_before_what_is_kept_gives_a_gap_and_a_snapshot(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)], history=2)
    await eventually(lambda: all_good(session))
    ws, hello = await connect(session)
    boot, since = hello["boot"], hello["seq"]
    await ws.close()
    for value in (30.0, 31.0, 32.0, 33.0):
        set_temperature(sim, value)
        last = await published(session, "boiler", "temperature", value)

    ws, hello = await connect(session, f"?since={since}&boot={boot}")
    gap = await next_frame(ws)
    assert gap["type"] == "gap"
    assert gap["since"] == since
    assert since < gap["oldest"] < last
    snapshot = await next_frame(ws)
    assert snapshot["type"] == "snapshot"
    assert {r["point"]: r["value"] for r in snapshot["readings"]} == {
        **BOILER_VALUES,
        "temperature": 33.0,
    }
    await ws.close()

    # from the oldest kept seq, resuming works again: the two kept readings, no gap
    ws, _ = await connect(session, f"?since={gap['oldest']}&boot={boot}")

    def caught_up(frame: Frame) -> bool:
        return frame["type"] != "readings" or bool(frame["readings"][-1]["seq"] >= last)

    frames = await frames_until(ws, caught_up)
    assert all(f["type"] == "readings" for f in frames)
    assert [r["value"] for r in readings_of(frames)] == [32.0, 33.0]
    await ws.close()


# --------------------------------------------------------------------------- refusals


async def test_an_unknown_device_is_a_404_problem_before_upgrading(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    for query, status in (
        ("?device=nope", 404),
        ("?point=boiler/nope", 404),
        ("?since=soon", 400),
        ("?colour=red", 400),
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect("api/v1/stream" + query)
        assert refused.value.status == status, query
        async with session.get("api/v1/stream" + query) as response:
            assert response.status == status
            assert response.content_type == "application/problem+json"
            body = await response.json(content_type=None)
        assert body["status"] == status
        assert body["title"]
        assert body["type"]
        assert query.lstrip("?").split("=")[0] in body["detail"] or "nope" in body["detail"]
    async with session.get("api/v1/stream") as response:  # no Upgrade header
        assert response.status == 400
        assert response.content_type == "application/problem+json"


# --------------------------------------------------------------------------- slow clients


async def test_a_client_that_does_not_read_is_closed_with_1013_and_others_go_on(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    # Many points over one register that a sine moves: every poll publishes them all, so
    # a client that does not read falls behind its socket buffers fast.
    sim.attach(1, "holding", 100, "float32", Sine(amplitude=50.0, period=0.3, offset=50.0))
    points = [
        {"id": f"flow_sensor_{i:03d}", "table": "holding", "address": 100, "type": "float32",
         "unit": "m3/h"} | ({"view_of": "flow_sensor_000"} if i else {})
        for i in range(240)
    ]  # fmt: skip
    running, session = await bridge_factory(
        [tcp_device("wave", port, points=points, interval=0.001)], subscriber_queue=2
    )
    slow = await session.ws_connect("api/v1/stream")
    reader, _ = await connect(session, "?point=wave/flow_sensor_000")
    received: list[Frame] = []

    async def read() -> None:
        async for message in reader:
            received.append(json.loads(message.data))

    reading = asyncio.create_task(read())

    async def overflowed() -> bool:
        async with session.get("metrics") as response:
            return "\ndevice_bridge_stream_overflows_total 0\n" not in await response.text()

    await eventually(overflowed, 10.0)
    seq_then = (await get_json(session, "api/v1/readings?device=wave"))["seq"]
    # the other subscriber keeps receiving readings published after the overflow
    await eventually(
        lambda: received and received[-1]["type"] == "readings"
        and received[-1]["readings"][-1]["seq"] > seq_then
    )  # fmt: skip
    assert not reader.closed

    # the slow client finds, after the frames already on their way, a 1013 close
    while (message := await slow.receive(timeout=FRAME_TIMEOUT)).type == WSMsgType.TEXT:
        pass
    assert message.type == WSMsgType.CLOSE
    assert slow.close_code == 1013
    assert message.extra is not None  # a close message's extra is its reason
    assert "since" in message.extra

    reading.cancel()
    await reader.close()
    assert running.bridge.hub.overflows == 1
