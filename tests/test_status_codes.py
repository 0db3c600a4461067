"""Every status code the README's "The API" documents, each a problem+json, against live simulators; then
CORS and the start-up warning about an exposed, unguarded bridge."""

from __future__ import annotations

import base64
import logging
import os
import socket
from typing import Any

import aiohttp
import pytest
from conftest import BOILER_POINTS, BridgeFactory, eventually, tcp_device

from bridge.config import parse_config
from bridge.server import start_server
from simulators.modbus import ModbusSimulator

PROBLEM = "application/problem+json"
WRITER = "agent:s3cret"
AUTH = {"Authorization": "Bearer s3cret"}
SETPOINT = "api/v1/devices/boiler/points/setpoint"
#: the headers of a WebSocket upgrade, for seeing the problem a refused handshake carries
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
}


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
    for key in ("type", "title", "detail"):
        assert isinstance(body[key], str), body
        assert body[key], body
    return body


async def problem_of(
    session: aiohttp.ClientSession, method: str, path: str, status: int, **kwargs: Any
) -> dict[str, Any]:
    async with session.request(method, path, **kwargs) as response:
        return await problem(response, status)


async def online(session: aiohttp.ClientSession, device: str = "boiler") -> bool:
    async with session.get(f"api/v1/devices/{device}", headers=AUTH) as response:
        return bool((await response.json())["status"] == "online")


async def offline(session: aiohttp.ClientSession, device: str) -> bool:
    async with session.get(f"api/v1/devices/{device}", headers=AUTH) as response:
        return bool((await response.json())["status"] == "offline")


@pytest.fixture
async def boiler(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> tuple[ModbusSimulator, aiohttp.ClientSession]:
    """The boiler's simulator and a bridge on it with writes enabled, the boiler online."""
    sim, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)], write_token=WRITER)
    await eventually(lambda: online(session))
    return sim, session


Boiler = tuple[ModbusSimulator, aiohttp.ClientSession]


# --------------------------------------------------------------------------- 400


@pytest.mark.parametrize(
    "path",
    [
        "api/v1/readings?colour=red",
        "api/v1/readings?device=boiler&limit=3",
        "api/v1/devices/boiler/points/temperature/history?limit=0",
        "api/v1/devices/boiler/points/temperature/history?limit=many",
        "api/v1/devices/boiler/points/temperature/history?since=yesterday",
        "api/v1/devices/boiler/points/temperature/history?order=desc",
        # found by the fuzzer or next to what it found: each was a 500 or taken as valid
        "api/v1/devices/boiler/points/temperature/history?limit=²",
        "api/v1/devices/boiler/points/temperature/history?limit=1000001",
        "api/v1/devices/boiler/points/temperature/history?since=nan",
        "api/v1/devices/boiler/points/temperature/history?since=1_000",
        "api/v1/stream?since=²",
    ],
)
async def test_400_for_a_bad_query_parameter(boiler: Boiler, path: str) -> None:
    _, session = boiler
    await problem_of(session, "GET", path, 400)


@pytest.mark.parametrize(
    "since",
    ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "1e3", "-5", "2026-01-01t00:00:00z"],
)
async def test_any_time_the_document_allows_is_taken(boiler: Boiler, since: str) -> None:
    _, session = boiler
    path = "api/v1/devices/boiler/points/temperature/history"
    async with session.get(path, params={"since": since, "limit": "1000000"}) as response:
        assert response.status == 200, await response.text()


async def test_400_for_a_stream_without_upgrade_or_with_a_bad_since(boiler: Boiler) -> None:
    _, session = boiler
    body = await problem_of(session, "GET", "api/v1/stream", 400)
    assert "WebSocket" in body["detail"]
    await problem_of(session, "GET", "api/v1/stream?since=-1", 400, headers=UPGRADE)


@pytest.mark.parametrize(
    "body",
    [
        b'{"value": ',
        b"value=1",
        b"",
        b"{}",
        b"[1]",
        b'{"value": 1, "extra": 2}',
        b'{"val": 1}',
        b"\xff\xfe",
    ],
)
async def test_400_for_a_body_that_is_not_a_value(boiler: Boiler, body: bytes) -> None:
    sim, session = boiler
    headers = {**AUTH, "Content-Type": "application/json"}
    answer = await problem_of(session, "PUT", SETPOINT, 400, data=body, headers=headers)
    assert '{"value": ...}' in answer["detail"]
    assert not [r for r in sim.requests if r.function == 16]


# --------------------------------------------------------------------------- 401


async def test_401_for_a_missing_wrong_or_foreign_scheme_token(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory(
        [tcp_device("boiler", port)], read_token="reader", write_token=WRITER
    )
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic cmVhZGVyOg=="},
        {"Authorization": "Token reader"},
        {"Authorization": "reader"},
    ):
        async with session.get("api/v1/devices", headers=headers) as response:
            await problem(response, 401)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # the scheme is case-insensitive (RFC 9110)
    for scheme in ("Bearer", "bearer", "BEARER"):
        async with session.get(
            "api/v1/devices", headers={"Authorization": f"{scheme} reader"}
        ) as response:
            assert response.status == 200
    # the stream is guarded too
    await problem_of(session, "GET", "api/v1/stream", 401, headers=UPGRADE)


async def test_401_for_a_write_without_a_write_token(boiler: Boiler) -> None:
    sim, session = boiler
    for headers in ({}, {"Authorization": "Bearer s3cre"}, {"Authorization": "Basic s3cret"}):
        body = await problem_of(
            session, "PUT", SETPOINT, 401, json={"value": 70.0}, headers=headers
        )
        assert "write token" in body["detail"]
    assert not [r for r in sim.requests if r.function == 16]
    async with session.put(
        SETPOINT, json={"value": 70.0}, headers={"Authorization": "bearer s3cret"}
    ) as response:
        assert response.status == 200, await response.text()


# --------------------------------------------------------------------------- 403


async def test_403_for_a_point_that_is_not_writable(boiler: Boiler) -> None:
    sim, session = boiler
    path = "api/v1/devices/boiler/points/temperature"
    body = await problem_of(session, "PUT", path, 403, json={"value": 1.0}, headers=AUTH)
    assert "not writable" in body["detail"]
    assert not [r for r in sim.requests if r.function in (5, 6, 15, 16)]


async def test_403_when_writes_are_disabled(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    body = await problem_of(session, "PUT", SETPOINT, 403, json={"value": 70.0}, headers=AUTH)
    assert "writes are disabled" in body["detail"]


async def test_403_for_a_stream_opened_by_a_foreign_page(boiler: Boiler) -> None:
    _, session = boiler
    headers = {**UPGRADE, "Origin": "https://evil.example"}
    body = await problem_of(session, "GET", "api/v1/stream", 403, headers=headers)
    assert "https://evil.example" in body["detail"]
    # a client that is not a browser sends no Origin and gets in
    async with session.ws_connect("api/v1/stream") as ws:
        assert (await ws.receive_json(timeout=2))["type"] == "hello"


async def test_a_stream_message_over_64_kib_closes_the_stream(boiler: Boiler) -> None:
    _, session = boiler
    async with session.ws_connect("api/v1/stream") as ws:
        assert (await ws.receive_json(timeout=2))["type"] == "hello"
        await ws.send_str('{"op": "subscribe", "devices": ["' + "x" * 65 * 1024 + '"]}')
        while (message := await ws.receive(timeout=2)).type == aiohttp.WSMsgType.TEXT:
            pass
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


# --------------------------------------------------------------------------- 404, 405


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "api/v1/devices/nope"),
        ("GET", "api/v1/devices/nope/readings"),
        ("POST", "api/v1/devices/nope/poll"),
        ("GET", "api/v1/devices/boiler/points/nope"),
        ("GET", "api/v1/devices/boiler/points/nope/history"),
        ("GET", "api/v1/readings?device=nope"),
        ("GET", "api/v1/readings?point=boiler/nope"),
        ("GET", "api/v1/nothing-here"),
        ("GET", "api/v2/devices"),
    ],
)
async def test_404_for_an_unknown_device_point_or_route(
    boiler: Boiler, method: str, path: str
) -> None:
    _, session = boiler
    await problem_of(session, method, path, 404)


async def test_404_for_a_write_to_an_unknown_point(boiler: Boiler) -> None:
    _, session = boiler
    path = "api/v1/devices/boiler/points/nope"
    body = await problem_of(session, "PUT", path, 404, json={"value": 1}, headers=AUTH)
    assert "nope" in body["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "api/v1/devices/boiler"),
        ("POST", "api/v1/readings"),
        ("PUT", "api/v1/devices/boiler/readings"),
        ("GET", "api/v1/devices/boiler/poll"),
        ("PATCH", SETPOINT),
    ],
)
async def test_405_for_a_method_the_route_does_not_take(
    boiler: Boiler, method: str, path: str
) -> None:
    _, session = boiler
    async with session.request(method, path, headers=AUTH) as response:
        body = await problem(response, 405)
        assert method in body["detail"]
        assert response.headers["Allow"]


# --------------------------------------------------------------------------- 413


async def test_413_for_a_body_over_64_kib(boiler: Boiler) -> None:
    sim, session = boiler
    big = b'{"value": "' + b"x" * (64 * 1024) + b'"}'
    headers = {**AUTH, "Content-Type": "application/json"}
    await problem_of(session, "PUT", SETPOINT, 413, data=big, headers=headers)
    assert not [r for r in sim.requests if r.function == 16]
    # just under the limit is read (and then refused for what it holds)
    fits = b'{"value": ' + b" " * (64 * 1024 - 20) + b"70.0}"
    async with session.put(SETPOINT, data=fits, headers=headers) as response:
        assert response.status == 200, await response.text()


# --------------------------------------------------------------------------- 422


@pytest.mark.parametrize(
    ("point", "value", "says"),
    [
        ("setpoint", "warm", "takes a number"),
        ("setpoint", "70", "takes a number"),
        ("setpoint", 90.5, "above the maximum 90"),
        ("setpoint", -0.5, "below the minimum 0"),
        ("setpoint", True, "takes a number"),
        ("setpoint", 10**400, "above the maximum"),
        ("pump_on", 1, "true or false"),
        ("pump_on", "on", "true or false"),
    ],
)
async def test_422_for_a_value_of_the_wrong_type_or_out_of_range(
    boiler: Boiler, point: str, value: Any, says: str
) -> None:
    # NaN and infinities cannot be sent: JSON has no such numbers
    sim, session = boiler
    path = f"api/v1/devices/boiler/points/{point}"
    body = await problem_of(session, "PUT", path, 422, json={"value": value}, headers=AUTH)
    assert says in body["detail"]
    assert not [r for r in sim.requests if r.function in (5, 16)]


# --------------------------------------------------------------------------- 502


async def test_502_when_the_device_refuses_the_write(boiler: Boiler) -> None:
    sim, session = boiler
    sim.exception_for("holding", 20, 21, 4)
    body = await problem_of(session, "PUT", SETPOINT, 502, json={"value": 70.0}, headers=AUTH)
    assert "exception 4" in body["detail"]


# --------------------------------------------------------------------------- 503


async def test_503_for_a_poll_or_a_write_when_the_endpoint_is_down(
    bridge_factory: BridgeFactory,
) -> None:
    _, session = await bridge_factory(
        [tcp_device("dead", closed_port(), points=BOILER_POINTS)], write_token=WRITER
    )
    await eventually(lambda: offline(session, "dead"))
    body = await problem_of(session, "POST", "api/v1/devices/dead/poll", 503)
    assert "offline" in body["detail"]
    path = "api/v1/devices/dead/points/setpoint"
    body = await problem_of(session, "PUT", path, 503, json={"value": 70.0}, headers=AUTH)
    assert "offline" in body["detail"]


async def test_503_for_a_stream_client_over_the_cap(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)], max_subscribers=1)
    async with session.ws_connect("api/v1/stream") as ws:
        assert (await ws.receive_json(timeout=2))["type"] == "hello"
        async with session.get("api/v1/stream", headers=UPGRADE) as response:
            body = await problem(response, 503)
            assert response.headers["Retry-After"]
        assert "too many" in body["detail"]
    # the place is free again once the first client has gone
    await eventually(lambda: ws_accepted(session))


async def ws_accepted(session: aiohttp.ClientSession) -> bool:
    try:
        async with session.ws_connect("api/v1/stream"):
            return True
    except aiohttp.WSServerHandshakeError:
        return False


# --------------------------------------------------------------------------- 504


async def test_504_for_a_poll_or_a_write_to_a_mute_unit(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    # polled once, then not for a minute: the boiler stays online while the test mutes it
    _, session = await bridge_factory(
        [tcp_device("boiler", port, interval=60.0)], write_token=WRITER
    )
    await eventually(lambda: online(session))
    state = sim.units.pop(1)  # the unit id no longer answers
    body = await problem_of(session, "PUT", SETPOINT, 504, json={"value": 70.0}, headers=AUTH)
    assert "did not answer" in body["detail"]
    body = await problem_of(session, "POST", "api/v1/devices/boiler/poll", 504)
    assert "did not answer" in body["detail"]
    assert state.get_value("holding", 20, "float32", word_order="little") == 65.0


# --------------------------------------------------------------------------- CORS


async def test_no_cors_headers_unless_origins_are_configured(boiler: Boiler) -> None:
    _, session = boiler
    origin = {"Origin": "https://app.example"}
    preflight = {**origin, "Access-Control-Request-Method": "PUT"}
    async with session.options(SETPOINT, headers=preflight) as response:
        assert "Access-Control-Allow-Origin" not in response.headers
    async with session.get("api/v1/devices", headers=origin) as response:
        assert response.status == 200
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


async def test_cors_answers_the_configured_origin_only(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory(
        [tcp_device("boiler", port)],
        cors_origins="https://app.example",
        read_token="reader",
        write_token=WRITER,
    )
    app = {"Origin": "https://app.example"}
    preflight = {"Access-Control-Request-Method": "PUT",
                 "Access-Control-Request-Headers": "authorization, content-type"}  # fmt: skip
    async with session.options(SETPOINT, headers={**app, **preflight}) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "PUT" in response.headers["Access-Control-Allow-Methods"]
        assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
    reader = {"Authorization": "Bearer reader"}
    async with session.get("api/v1/devices", headers={**app, **reader}) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "Origin" in response.headers["Vary"]
    # an error reaches the page too, so that it can tell the user why
    async with session.get("api/v1/devices", headers=app) as response:
        await problem(response, 401)
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"

    other = {"Origin": "https://other.example"}
    async with session.options(SETPOINT, headers={**other, **preflight}) as response:
        assert "Access-Control-Allow-Origin" not in response.headers
    async with session.get("api/v1/devices", headers={**other, **reader}) as response:
        assert response.status == 200
        assert "Access-Control-Allow-Origin" not in response.headers
    # the configured origin may open the stream; the other may not
    async with session.ws_connect("api/v1/stream", headers={**app, **reader}) as ws:
        assert (await ws.receive_json(timeout=2))["type"] == "hello"
    await problem_of(session, "GET", "api/v1/stream", 403, headers={**UPGRADE, **other, **reader})


# --------------------------------------------------------------------------- exposure


async def test_listening_beyond_loopback_without_a_read_token_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.server")
    devices = [tcp_device("dead", closed_port(), points=BOILER_POINTS[:1])]
    for host, read_token, warned in (
        ("0.0.0.0", None, True),
        ("127.0.0.1", None, False),
        ("0.0.0.0", "reader", False),
    ):
        caplog.clear()
        server = {"host": host, "port": 0, "read_token": read_token}
        running = await start_server(parse_config({"server": server, "devices": devices}))
        await running.close()
        warnings = [
            r for r in caplog.records
            if r.name == "bridge.server" and "BRIDGE_READ_TOKEN" in r.getMessage()
        ]  # fmt: skip
        assert bool(warnings) is warned, (host, read_token, warnings)
        if warned:
            assert warnings[0].levelno == logging.WARNING
            assert "0.0.0.0" in warnings[0].getMessage()
            assert "BRIDGE_READ_TOKEN" in warnings[0].getMessage()
