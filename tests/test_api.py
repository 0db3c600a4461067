"""The HTTP API (README, "The API"), against a live bridge polling a real Modbus TCP simulator."""

from __future__ import annotations

import platform
import re
import socket
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any

import aiohttp
import pytest
from conftest import BOILER_POINTS, BridgeFactory, all_good, eventually, get_json, tcp_device

from bridge import __version__
from simulators.modbus import ModbusSimulator

PROBLEM = "application/problem+json"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
BOILER_VALUES = {
    "temperature": 21.5,
    "pressure": 1.52,
    "pump_on": True,
    "setpoint": 65.0,
    "alarm": True,
    "model": "BOILER-1",
}
#: the twin reads two of the boiler's registers as a second device on the same endpoint
TWIN_POINTS = [p for p in BOILER_POINTS if p["id"] in ("temperature", "pressure")]


def closed_port() -> int:
    """A port on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def problem(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    """Check that a response is a problem+json of this status; its body."""
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body: dict[str, Any] = await response.json(content_type=None)
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert body["type"]
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


async def status_of(session: aiohttp.ClientSession, path: str) -> int:
    async with session.get(path) as response:
        return response.status


async def point(session: aiohttp.ClientSession, device: str, point_id: str) -> dict[str, Any]:
    reading: dict[str, Any] = await get_json(session, f"api/v1/devices/{device}/points/{point_id}")
    return reading


async def has_status(session: aiohttp.ClientSession, device: str, status: str) -> bool:
    body = await get_json(session, f"api/v1/devices/{device}")
    return bool(body["status"] == status)


async def reads(session: aiohttp.ClientSession, point_id: str, value: Any) -> bool:
    """Whether the boiler's point reads this value now."""
    return bool((await point(session, "boiler", point_id))["value"] == value)


def pairs(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["device"], r["point"]) for r in body["readings"]]


async def when(awaitable: Any, test: Any) -> Any:
    """The awaited value if it passes ``test``, else None (for ``eventually``)."""
    value = await awaitable
    return value if test(value) else None


def parse_metrics(text: str) -> dict[str, float]:
    """Samples of a Prometheus text exposition, by ``name{labels}``."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        samples[name] = float(value)
    return samples


# --------------------------------------------------------------------------- health


async def test_healthz_answers_200_while_the_only_device_is_dead(
    bridge_factory: BridgeFactory,
) -> None:
    _, session = await bridge_factory([tcp_device("dead", closed_port())])
    await eventually(lambda: has_status(session, "dead", "offline"))
    assert await get_json(session, "healthz") == {"status": "ok"}


async def test_readyz_is_503_until_every_device_was_tried_then_200_with_statuses(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    sim.delay = 0.3  # the boiler's first poll takes that long
    _, session = await bridge_factory(
        [
            tcp_device("boiler", port, points=TWIN_POINTS[:1], timeout=1.0),
            tcp_device("dead", closed_port()),
        ]
    )
    async with session.get("readyz") as response:
        body = await problem(response, 503)
    assert "boiler" in body["detail"]
    assert "dead" not in body["detail"]
    assert body["devices"]["boiler"] == "starting"

    async def ready() -> Any:
        async with session.get("readyz") as response:
            return await response.json(content_type=None) if response.status == 200 else None

    body = await eventually(ready)
    assert body == {"status": "ready", "devices": {"boiler": "online", "dead": "offline"}}


async def test_metrics_count_polls_failures_and_latency_per_device(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory(
        [tcp_device("boiler", port), tcp_device("dead", closed_port())]
    )
    boiler = '{device="boiler",driver="modbus-tcp"}'
    dead = '{device="dead",driver="modbus-tcp"}'

    async def scrape() -> dict[str, float]:
        async with session.get("metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            return parse_metrics(await response.text())

    first = await eventually(
        lambda: when(
            scrape(),
            lambda m: (
                m[f"device_bridge_poll_failures_total{dead}"] >= 1
                and m[f"device_bridge_poll_latency_seconds_sum{boiler}"] > 0
            ),
        )
    )
    assert first[f"device_bridge_polls_total{boiler}"] >= 1
    assert first[f"device_bridge_poll_failures_total{boiler}"] == 0
    assert first[f"device_bridge_poll_latency_seconds_count{boiler}"] >= 1
    assert first[f"device_bridge_poll_latency_seconds_sum{boiler}"] > 0
    assert first[f"device_bridge_poll_latency_seconds_count{dead}"] == 0
    assert first[f"device_bridge_device_up{boiler}"] == 1
    assert first[f"device_bridge_device_up{dead}"] == 0
    assert first["device_bridge_readings_published_total"] >= len(BOILER_POINTS)
    build = [k for k in first if k.startswith("device_bridge_build_info{")]
    assert build == [
        f'device_bridge_build_info{{version="{__version__}",python="{platform.python_version()}"}}'
    ]
    assert first[build[0]] == 1

    # the counters go on growing with every poll
    later = await eventually(
        lambda: when(
            scrape(),
            lambda m: (
                m[f"device_bridge_polls_total{boiler}"]
                > first[f"device_bridge_polls_total{boiler}"]
                # a poll is counted when it starts, its latency when it is answered
                and m[f"device_bridge_poll_latency_seconds_count{boiler}"]
                > first[f"device_bridge_poll_latency_seconds_count{boiler}"]
                and m[f"device_bridge_poll_failures_total{dead}"]
                > first[f"device_bridge_poll_failures_total{dead}"]
            ),
        )
    )
    assert (
        later[f"device_bridge_poll_latency_seconds_count{boiler}"]
        > first[f"device_bridge_poll_latency_seconds_count{boiler}"]
    )


async def test_metrics_keep_large_counters_exact(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    """A long-running bridge has published millions of readings: the counter stays exact."""
    sim, port = simulator
    running, session = await bridge_factory([tcp_device("boiler", port)])
    await eventually(lambda: all_good(session, "boiler"))
    running.bridge.store.seq = 12_345_678  # as if after weeks of running
    sim.units[1].set_value("holding", 0, "float32", 30.0)
    await eventually(lambda: reads(session, "temperature", 30.0))
    async with session.get("metrics") as response:
        text = await response.text()
    assert "device_bridge_readings_published_total 12345679\n" in text


# --------------------------------------------------------------------------- devices


async def test_devices_list_each_device_with_status_and_last_poll(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    dead_port = closed_port()
    _, session = await bridge_factory([tcp_device("boiler", port), tcp_device("dead", dead_port)])
    await eventually(lambda: has_status(session, "boiler", "online"))
    await eventually(lambda: has_status(session, "dead", "offline"))

    body = await get_json(session, "api/v1/devices")
    boiler, dead = body["devices"]
    assert set(boiler) >= {"id", "driver", "status", "last_success", "last_error", "points"}
    assert boiler["id"] == "boiler"
    assert boiler["driver"] == "modbus-tcp"
    assert boiler["status"] == "online"
    assert ISO_UTC.match(boiler["last_success"])
    assert boiler["last_error"] is None
    assert boiler["points"] == [p["id"] for p in BOILER_POINTS]
    assert dead["id"] == "dead"
    assert dead["status"] == "offline"
    assert dead["last_success"] is None
    assert str(dead_port) in dead["last_error"]


async def test_one_device_shows_point_definitions_and_poll_statistics(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    await eventually(lambda: has_status(session, "boiler", "online"))

    body = await get_json(session, "api/v1/devices/boiler")
    assert (body["id"], body["driver"], body["status"]) == ("boiler", "modbus-tcp", "online")
    assert [p["id"] for p in body["points"]] == [p["id"] for p in BOILER_POINTS]
    by_id = {p["id"]: p for p in body["points"]}
    for given in BOILER_POINTS:  # every field of the file comes back as given
        assert {k: by_id[given["id"]][k] for k in given} == given
    stats = body["stats"]
    assert stats["polls"] >= 1
    assert stats["failures"] == 0
    assert stats["last_latency_ms"] > 0


async def test_a_refused_point_is_bad_with_its_error_and_the_device_degraded(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    sim.exception_for("holding", 40, 47, 2)
    _, session = await bridge_factory([tcp_device("boiler", port)])
    await eventually(lambda: has_status(session, "boiler", "degraded"))

    model = await point(session, "boiler", "model")
    assert (model["quality"], model["value"]) == ("bad", None)
    assert "illegal data address" in model["error"]
    temperature = await point(session, "boiler", "temperature")
    assert (temperature["quality"], temperature["value"]) == ("good", 21.5)
    stats = (await get_json(session, "api/v1/devices/boiler"))["stats"]
    assert stats["point_failures"] >= 1
    assert stats["failures"] == 0


# --------------------------------------------------------------------------- readings


async def test_every_point_reads_its_value_decoded(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    await eventually(lambda: all_good(session, "boiler"))

    body = await get_json(session, "api/v1/devices/boiler/readings")
    assert [r["point"] for r in body["readings"]] == list(BOILER_VALUES)
    assert {r["point"]: r["value"] for r in body["readings"]} == BOILER_VALUES
    assert isinstance(body["boot"], str)
    assert body["seq"] >= len(BOILER_VALUES)

    for point_id, value in BOILER_VALUES.items():
        reading = await point(session, "boiler", point_id)
        assert reading["device"] == "boiler"
        assert reading["point"] == point_id
        assert reading["value"] == value
        assert type(reading["value"]) is type(value)
        assert reading["quality"] == "good"
        assert ISO_UTC.match(reading["ts"])
        assert 1 <= reading["seq"] <= body["seq"]
        assert "error" not in reading
    assert (await point(session, "boiler", "temperature"))["unit"] == "°C"
    assert (await point(session, "boiler", "pressure"))["unit"] == "bar"
    assert (await point(session, "boiler", "model"))["unit"] is None


ALL_BOILER = [("boiler", p) for p in BOILER_VALUES]
ALL_TWIN = [("twin", "temperature"), ("twin", "pressure")]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ALL_BOILER + ALL_TWIN),
        ("?device=twin", ALL_TWIN),
        ("?device=twin&device=boiler", ALL_BOILER + ALL_TWIN),
        ("?point=twin/pressure&point=boiler/model", [("boiler", "model"), ("twin", "pressure")]),
        # a bare point id: that point on every device that has it
        ("?point=temperature", [("boiler", "temperature"), ("twin", "temperature")]),
        ("?point=pressure&point=alarm", [("boiler", "pressure"), ("boiler", "alarm"),
                                         ("twin", "pressure")]),
        # ... or on the devices named
        ("?device=twin&point=temperature", [("twin", "temperature")]),
        # device and device/point filters add up
        ("?device=twin&point=boiler/alarm", [("boiler", "alarm"), *ALL_TWIN]),
    ],
)  # fmt: skip
async def test_readings_filters_by_device_and_point(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    query: str,
    expected: list[tuple[str, str]],
) -> None:
    _, port = simulator
    _, session = await bridge_factory(
        [tcp_device("boiler", port), tcp_device("twin", port, points=TWIN_POINTS)]
    )
    await eventually(lambda: all_good(session, "boiler"))
    await eventually(lambda: all_good(session, "twin"))
    body = await get_json(session, "api/v1/readings" + query)
    assert pairs(body) == expected
    assert all(r["quality"] == "good" for r in body["readings"])
    twin = {r["point"]: r["value"] for r in body["readings"] if r["device"] == "twin"}
    assert twin == {k: BOILER_VALUES[k] for k in twin}


async def test_history_keeps_readings_oldest_first_with_since_and_limit(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    await eventually(lambda: all_good(session, "boiler"))
    for value in (30.0, 31.0, 32.0):
        sim.units[1].set_value("holding", 0, "float32", value)
        await eventually(partial(reads, session, "temperature", value))

    path = "api/v1/devices/boiler/points/temperature/history"
    kept = (await get_json(session, path))["readings"]
    assert [r["value"] for r in kept] == [21.5, 30.0, 31.0, 32.0]
    assert [r["seq"] for r in kept] == sorted(r["seq"] for r in kept)
    assert all(r["quality"] == "good" and r["point"] == "temperature" for r in kept)

    limited = (await get_json(session, path, params={"limit": "2"}))["readings"]
    assert [r["value"] for r in limited] == [21.5, 30.0]

    since = kept[2]["ts"]  # as served: ISO 8601 with Z
    later = (await get_json(session, path, params={"since": since}))["readings"]
    assert [r["value"] for r in later] == [31.0, 32.0]
    # the same moment with an offset instead of Z
    moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
    shifted = moment.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert shifted.endswith("+02:00")
    again = (await get_json(session, path, params={"since": shifted}))["readings"]
    assert again == later
    one = (await get_json(session, path, params={"since": since, "limit": "1"}))["readings"]
    assert [r["value"] for r in one] == [31.0]
    future = (moment + timedelta(days=1)).isoformat()
    assert (await get_json(session, path, params={"since": future}))["readings"] == []


# --------------------------------------------------------------------------- poll now


async def test_poll_answers_fresh_readings_at_once(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    # polled once at start, and then not for a long while
    _, session = await bridge_factory([tcp_device("boiler", port, interval=60.0)])
    await eventually(lambda: all_good(session, "boiler"))
    sim.units[1].set_value("holding", 0, "float32", 30.0)
    sim.units[1].set_value("coil", 0, "bool", False)
    assert (await point(session, "boiler", "temperature"))["value"] == 21.5

    async with session.post("api/v1/devices/boiler/poll") as response:
        assert response.status == 200
        body = await response.json()
    assert body["device"] == "boiler"
    assert body["status"] == "online"
    values = {r["point"]: r["value"] for r in body["readings"]}
    assert values == {**BOILER_VALUES, "temperature": 30.0, "pump_on": False}
    assert all(r["quality"] == "good" for r in body["readings"])
    assert (await point(session, "boiler", "temperature"))["value"] == 30.0


async def test_poll_of_a_device_whose_endpoint_is_down_is_503(
    bridge_factory: BridgeFactory,
) -> None:
    _, session = await bridge_factory([tcp_device("dead", closed_port())])
    await eventually(lambda: has_status(session, "dead", "offline"))
    async with session.post("api/v1/devices/dead/poll") as response:
        body = await problem(response, 503)
    assert "dead" in body["detail"]


async def test_poll_of_a_device_that_does_not_answer_is_504(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("mute", port, unit=9)])
    await eventually(lambda: has_status(session, "mute", "offline"))
    async with session.post("api/v1/devices/mute/poll") as response:
        body = await problem(response, 504)
    assert "did not answer" in body["detail"]


# --------------------------------------------------------------------------- problems


async def test_unknown_device_point_and_route_are_404_problems(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    for path in (
        "api/v1/devices/nope",
        "api/v1/devices/nope/readings",
        "api/v1/devices/nope/points/temperature",
        "api/v1/devices/boiler/points/nope",
        "api/v1/devices/boiler/points/nope/history",
        "api/v1/readings?device=nope",
        "api/v1/readings?point=boiler/nope",
        "api/v1/readings?point=nope",
        "api/v2/readings",
        "nowhere",
    ):
        async with session.get(path) as response:
            body = await problem(response, 404)
        assert "nope" in body["detail"] or path in body["detail"], (path, body)
    async with session.post("api/v1/devices/nope/poll") as response:
        await problem(response, 404)
    async with session.get("api/v1/devices/nope") as response:
        assert "boiler" in (await problem(response, 404))["detail"]  # names the known ones


async def test_a_wrong_method_is_a_405_problem(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    for method, path in (
        ("POST", "api/v1/readings"),
        ("DELETE", "api/v1/devices/boiler"),
        ("GET", "api/v1/devices/boiler/poll"),
        ("POST", "healthz"),
    ):
        async with session.request(method, path) as response:
            await problem(response, 405)
            assert response.headers["Allow"], (method, path)


@pytest.mark.parametrize(
    "path",
    [
        "api/v1/readings?colour=red",
        "api/v1/readings?since=5",
        "api/v1/devices/boiler/points/temperature/history?colour=red",
        "api/v1/devices/boiler/points/temperature/history?limit=0",
        "api/v1/devices/boiler/points/temperature/history?limit=-1",
        "api/v1/devices/boiler/points/temperature/history?limit=ten",
        "api/v1/devices/boiler/points/temperature/history?since=yesterday",
        "api/v1/devices/boiler/points/temperature/history?since=2026-13-45T00:00:00Z",
    ],
)
async def test_a_bad_query_is_a_400_problem(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory, path: str
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    async with session.get(path) as response:
        body = await problem(response, 400)
    parameter = path.rpartition("?")[2].partition("=")[0]
    assert parameter in body["detail"]


# --------------------------------------------------------------------------- settings


async def test_root_path_serves_every_route_under_it_and_none_without(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    running, session = await bridge_factory([tcp_device("boiler", port)], root_path="/resource")
    assert running.url.endswith("/resource")
    await eventually(lambda: all_good(session, "boiler"))
    for path in ("healthz", "readyz", "metrics", "api/v1/devices", "api/v1/readings",
                 "api/v1/devices/boiler/points/temperature"):  # fmt: skip
        assert await status_of(session, path) == 200, path
    reading = await point(session, "boiler", "temperature")
    assert reading["value"] == 21.5

    bare = running.url.removesuffix("/resource") + "/"
    async with aiohttp.ClientSession(base_url=bare) as outside:
        for path in ("healthz", "api/v1/readings", "api/v1/devices/boiler"):
            async with outside.get(path) as response:
                await problem(response, 404)


async def test_read_token_guards_every_route_but_healthz(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)], read_token="s3cret")
    good = {"Authorization": "Bearer s3cret"}
    routes = ["readyz", "metrics", "api/v1/devices", "api/v1/devices/boiler",
              "api/v1/readings", "api/v1/devices/boiler/readings",
              "api/v1/devices/boiler/points/temperature",
              "api/v1/devices/boiler/points/temperature/history"]  # fmt: skip

    async def ready() -> bool:
        async with session.get("readyz", headers=good) as response:
            return response.status == 200

    await eventually(ready)
    for path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            async with session.get(path, headers=headers) as response:
                await problem(response, 401)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
        async with session.get(path, headers=good) as response:
            assert response.status == 200, path
    async with session.post("api/v1/devices/boiler/poll") as response:
        await problem(response, 401)
    async with session.post("api/v1/devices/boiler/poll", headers=good) as response:
        assert response.status == 200
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect("api/v1/stream")
    assert refused.value.status == 401
    async with session.ws_connect("api/v1/stream", headers=good) as ws:
        assert (await ws.receive_json(timeout=2))["type"] == "hello"

    assert await get_json(session, "healthz") == {"status": "ok"}


async def test_read_token_under_a_root_path_still_leaves_healthz_open(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory(
        [tcp_device("boiler", port)], read_token="s3cret", root_path="/resource"
    )
    assert await get_json(session, "healthz") == {"status": "ok"}
    async with session.get("api/v1/readings") as response:
        await problem(response, 401)
    headers = {"Authorization": "Bearer s3cret"}
    assert "readings" in await get_json(session, "api/v1/readings", headers=headers)


async def test_read_token_is_not_bypassed_by_a_path_ending_in_healthz(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)], read_token="s3cret")
    for path in ("api/v1/devices/healthz", "api/v1/devices/boiler/points/healthz"):
        async with session.get(path) as response:
            body = await problem(response, 401)
        assert "boiler" not in body["detail"]
        assert "temperature" not in body["detail"]


# --------------------------------------------------------------------------- quality


async def test_a_silent_device_turns_stale_and_offline_then_good_and_online(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    await eventually(lambda: all_good(session, "boiler"))
    before = await point(session, "boiler", "temperature")

    sim.silent = True
    silenced = datetime.now(UTC)
    stale = await eventually(
        lambda: when(point(session, "boiler", "temperature"), lambda r: r["quality"] == "stale")
    )
    # the last good value is kept, with its time: of a poll before the silence (one may
    # have answered between ``before`` and it)
    assert stale["value"] == 21.5
    assert before["ts"] <= stale["ts"]
    assert datetime.fromisoformat(stale["ts"]) <= silenced
    assert "did not answer" in stale["error"]
    assert stale["seq"] > before["seq"]
    await eventually(lambda: has_status(session, "boiler", "offline"))
    device = await get_json(session, "api/v1/devices/boiler")
    assert "did not answer" in device["last_error"]
    readings = (await get_json(session, "api/v1/devices/boiler/readings"))["readings"]
    assert {r["point"]: (r["quality"], r["value"]) for r in readings} == {
        k: ("stale", v) for k, v in BOILER_VALUES.items()
    }

    sim.silent = False
    await eventually(lambda: all_good(session, "boiler"))
    await eventually(lambda: has_status(session, "boiler", "online"))
    back = await point(session, "boiler", "temperature")
    assert back["value"] == 21.5
    assert "error" not in back
    assert back["seq"] > stale["seq"]
    assert back["ts"] > stale["ts"]
