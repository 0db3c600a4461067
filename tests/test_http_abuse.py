"""Hostile HTTP clients over raw sockets: slow requests, too many connections, malformed
requests and headers, rebinding pages. None of them stalls the bridge, fills its log or
gets anything but a problem."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from conftest import BridgeFactory, eventually, tcp_device
from yarl import URL

from bridge.api.hosts import HOSTS_KEPT, HostPolicy
from bridge.server import RunningServer
from bridge.settings import Settings
from simulators.modbus import ModbusSimulator

PROBLEM = "application/problem+json"


async def raw(running: RunningServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = URL(running.url)
    assert url.host is not None
    return await asyncio.open_connection(url.host, url.port)


async def exchange(running: RunningServer, request: bytes, within: float = 5.0) -> bytes:
    """Send raw bytes, return the server's answer (head and body)."""
    reader, writer = await raw(running)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(answer_of(reader), within)
    finally:
        writer.close()


async def answer_of(reader: asyncio.StreamReader) -> bytes:
    """One HTTP answer: its head, and a body of its Content-Length (or up to the close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return head + await reader.readexactly(int(value))
    return head + await reader.read()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def start_bridge(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory, request_timeout: float
) -> RunningServer:
    _, port = simulator
    running, _ = await bridge_factory(
        [tcp_device("boiler", port, interval=60)],
        request_timeout=request_timeout,
        max_connections=4,
        max_subscribers=2,
        write_token="agent:s3cret",
    )
    return running


@pytest.fixture
async def bridge(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> RunningServer:
    """A bridge that cuts slow clients after 0.3 s and takes four connections."""
    return await start_bridge(simulator, bridge_factory, request_timeout=0.3)


@pytest.fixture
async def patient_bridge(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> RunningServer:
    """As ``bridge``, but idle connections are kept long enough to fill the cap."""
    return await start_bridge(simulator, bridge_factory, request_timeout=5.0)


# ------------------------------------------------------------------- slow clients, caps


async def test_a_client_that_never_finishes_its_headers_is_cut_off(bridge: RunningServer) -> None:
    reader, writer = await raw(bridge)
    writer.write(b"GET /api/v1/readings HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and no more
    await writer.drain()
    # the server closes the connection after BRIDGE_REQUEST_TIMEOUT
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_a_body_that_trickles_is_answered_408_in_bounded_time(bridge: RunningServer) -> None:
    reader, writer = await raw(bridge)
    writer.write(
        b"PUT /api/v1/devices/boiler/points/setpoint HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer s3cret\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"value"'
    )
    await writer.drain()
    answer = await asyncio.wait_for(answer_of(reader), 5)
    writer.close()
    assert status_of(answer) == 408
    assert PROBLEM.encode() in answer


async def test_connections_beyond_the_cap_get_a_503_problem_and_others_are_served(
    patient_bridge: RunningServer,
) -> None:
    bridge = patient_bridge
    idle = [await raw(bridge) for _ in range(4)]
    try:
        server = bridge.runner.server
        assert server is not None
        await eventually(lambda: len(server.connections) == 4)
        answer = await exchange(bridge, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert status_of(answer) == 503
        assert PROBLEM.encode() in answer
    finally:
        for _, writer in idle:
            writer.close()
    # once they are gone, requests are served again
    await eventually(lambda: len(server.connections) == 0)
    answer = await exchange(
        bridge, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert status_of(answer) == 200


# ------------------------------------------------------------------- malformed requests


@pytest.mark.parametrize(
    "route", ["GET /api/v1/readings", "PUT /api/v1/devices/boiler/points/setpoint"]
)
async def test_an_authorization_header_that_is_not_utf8_is_a_401_problem(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory, route: str
) -> None:
    _, port = simulator
    running, _ = await bridge_factory(
        [tcp_device("boiler", port, interval=60)], read_token="r34d", write_token="s3cret"
    )
    answer = await exchange(
        running,
        route.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\xfe\x80\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n",
    )
    assert status_of(answer) == 401, answer
    assert PROBLEM.encode() in answer


MALFORMED = {
    "a bad byte in the path": b"GET /api/v1/\x01readings HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "a very long URL": b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "a very long header": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
    "thousands of headers": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    + b"".join(b"X-%d: 1\r\n" % i for i in range(3000))
    + b"\r\n",
    "a bad Content-Length": b"POST /api/v1/devices/boiler/poll HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Length: -5\r\n\r\n",
    "bad chunking": b"POST /api/v1/devices/boiler/poll HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "an unknown method": b"G@T / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
}


async def test_malformed_requests_are_refused_with_one_quiet_log_line_and_no_traceback(
    bridge: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name, request in MALFORMED.items():
        answer = await exchange(bridge, request)
        assert 400 <= status_of(answer) < 500, (name, answer[:100])
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not noisy, [(r.name, r.getMessage()) for r in noisy]
    notes = [r for r in caplog.records if "malformed request" in r.getMessage()]
    # rate-limited: the first one is told, the rest are counted into the next line
    assert len(notes) == 1
    assert "\n" not in notes[0].getMessage()
    answer = await exchange(
        bridge, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert status_of(answer) == 200


@pytest.mark.parametrize(
    "target",
    ["/api/v1/readings?device=%ff", "/api/v1/devices/%ff%fe", "/api/v1/readings?point=%00",
     "/api/v1/devices/boiler/points/temperature/history?since=%ff"],
)  # fmt: skip
async def test_requests_the_app_sees_are_answered_with_a_problem(
    bridge: RunningServer, target: str
) -> None:
    answer = await exchange(
        bridge, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    )
    assert 400 <= status_of(answer) < 500, answer[:200]
    assert PROBLEM.encode() in answer


# ------------------------------------------------------------------- DNS rebinding


async def status(session: aiohttp.ClientSession, method: str, path: str, **headers: str) -> int:
    async with session.request(method, path, headers=headers) as response:
        if response.status >= 400:
            assert response.content_type == PROBLEM
        return response.status


async def test_a_request_naming_a_foreign_host_is_refused(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    running, session = await bridge_factory([tcp_device("boiler", port, interval=60)])
    url = URL(running.url)
    for path in ("api/v1/readings", "healthz", "api/v1/stream"):
        assert await status(session, "GET", path, Host=f"evil.example:{url.port}") == 403
    assert await status(session, "POST", "api/v1/devices/boiler/poll", Host="evil.example") == 403
    for host in ("localhost", f"127.0.0.1:{url.port}", "[::1]:80", "10.1.2.3", "a.localhost"):
        assert await status(session, "GET", "api/v1/readings", Host=host) == 200, host


def test_made_up_host_names_are_refused_every_time_without_growing_the_policy() -> None:
    policy = HostPolicy(Settings(allowed_hosts="bridge.plant"))
    for i in range(3 * HOSTS_KEPT):
        assert not policy.host_allowed(f"evil{i}.example:80")
        assert policy.host_allowed("bridge.plant:5000")
        assert policy.host_allowed(f"10.0.{i % 256}.1")
    assert not policy.host_allowed("evil0.example:80")  # asked again once forgotten
    assert len(policy._hosts) <= HOSTS_KEPT


async def test_allowed_hosts_adds_names_and_a_star_switches_the_check_off(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, listed = await bridge_factory(
        [tcp_device("boiler", port, interval=60)], allowed_hosts="bridge.plant, other.plant"
    )
    assert await status(listed, "GET", "api/v1/readings", Host="bridge.plant:5000") == 200
    assert await status(listed, "GET", "api/v1/readings", Host="evil.example") == 403
    _, anything = await bridge_factory([tcp_device("boiler", port, interval=60)], allowed_hosts="*")
    assert await status(anything, "GET", "api/v1/readings", Host="evil.example") == 200


async def test_a_foreign_origin_may_not_change_anything_or_open_the_stream_whatever_the_host(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    running, session = await bridge_factory(
        [tcp_device("boiler", port, interval=60)], allowed_hosts="*",
        cors_origins="https://hmi.plant",
    )  # fmt: skip
    url = URL(running.url)
    evil = f"http://evil.example:{url.port}"
    poll = "api/v1/devices/boiler/poll"
    # the rebinding page's Origin matches the Host it sends: still refused
    assert await status(session, "POST", poll, Origin=evil, Host=f"evil.example:{url.port}") == 403
    assert await status(session, "POST", poll, Origin="null") == 403
    assert await status(session, "POST", poll, Origin=f"http://localhost:{url.port}") == 200
    assert await status(session, "POST", poll, Origin="https://hmi.plant") == 200
    assert await status(session, "POST", poll) == 200  # not a browser: no Origin
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(
            "api/v1/stream", headers={"Origin": evil, "Host": f"evil.example:{url.port}"}
        )
    assert refused.value.status == 403
    async with session.ws_connect("api/v1/stream", headers={"Origin": "https://hmi.plant"}) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
