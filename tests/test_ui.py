"""The page's server side: where it is served, its headers, tokens, links and traffic."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import aiohttp
import pytest
from conftest import eventually, tcp_device

from bridge.config import parse_config
from bridge.server import start_server
from bridge.traffic import Traffic
from drivers.base import Exchange, Link, Tap
from drivers.modbus.config import ModbusRtuDevice
from simulators.modbus.rtu_frame import crc16


async def test_the_page_is_served_at_the_root_with_a_strict_content_security_policy(
    simulator: Any, bridge_factory: Any
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    async with session.get("") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
        policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # no inline script or handler: the only script is the page's own file
    assert re.findall(r"<script[^>]*>", page) == ['<script src="ui/app.js" defer>']
    assert not re.search(r"\son[a-z]+\s*=", page)
    for asset, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        async with session.get(f"ui/{asset}") as response:
            assert response.status == 200
            assert response.content_type == kind
            assert "Content-Security-Policy" in response.headers
    async with session.get("ui/nope.js") as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"
    app = await (await session.get("ui/app.js")).text()
    assert "eval(" not in app
    assert "innerHTML" not in app
    assert "new Function" not in app


async def test_bridge_ui_false_turns_the_page_and_traffic_off(
    simulator: Any, bridge_factory: Any
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)], ui=False)
    for path in ("", "ui/app.js", "api/v1/traffic"):
        async with session.get(path) as response:
            assert response.status == 404, path
    async with session.get("api/v1/readings") as response:
        assert response.status == 200


async def test_under_a_root_path_the_page_is_there_and_its_bare_path_redirects(
    simulator: Any, bridge_factory: Any
) -> None:
    _, port = simulator
    running, _ = await bridge_factory([tcp_device("boiler", port)], root_path="/resource")
    origin = running.url.removesuffix("/resource")
    async with aiohttp.ClientSession() as http:
        async with http.get(origin + "/resource", allow_redirects=False) as response:
            assert response.status == 308
            assert response.headers["Location"] == "/resource/"
        async with http.get(origin + "/resource/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
        async with http.get(origin + "/resource/ui/app.js") as response:
            assert response.status == 200
        async with http.get(origin + "/") as response:
            assert response.status == 404


async def test_the_debug_port_serves_page_and_traffic_while_the_api_port_keeps_them_off(
    simulator: Any,
) -> None:
    _, port = simulator
    config = parse_config({
        "server": {"port": 0, "ui": False, "debug_port": 0},
        "devices": [tcp_device("boiler", port)],
    })  # fmt: skip
    server = await start_server(config)
    try:
        assert server.debug_url is not None
        assert server.debug_url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/") as response:
                assert response.status == 404
            async with http.get(server.debug_url + "/") as response:
                assert response.status == 200
            async with http.get(server.debug_url + "/api/v1/links") as response:
                assert (await response.json())["links"][0]["devices"][0]["id"] == "boiler"
            async with http.ws_connect(server.debug_url + "/api/v1/traffic") as ws:
                hello = await ws.receive_json()
                assert hello == {"type": "hello", "links": [f"tcp://127.0.0.1:{port}"], "kept": 200}
                exchange = await ws.receive_json(timeout=5)
                assert exchange["type"] == "exchange"
                assert exchange["device"] == "boiler"
    finally:
        await server.close()
    assert server.bridge.traffic.viewers == set()


async def test_the_read_token_guards_page_data_and_travels_as_a_websocket_subprotocol(
    simulator: Any, bridge_factory: Any
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)], read_token="s3cret")
    # the page itself is a shell with no data; everything it shows needs the token
    async with session.get("") as response:
        assert response.status == 200
    for path in ("api/v1/links", "api/v1/devices"):
        async with session.get(path) as response:
            assert response.status == 401, path
    for route in ("api/v1/stream", "api/v1/traffic"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(route, protocols=("device-bridge", "bearer.bm9wZQ"))
        assert refused.value.status == 401
        encoded = base64.urlsafe_b64encode(b"s3cret").decode().rstrip("=")
        ws = await session.ws_connect(route, protocols=("device-bridge", f"bearer.{encoded}"))
        assert ws.protocol == "device-bridge"
        assert (await ws.receive_json())["type"] == "hello"
        await ws.close()


async def test_a_page_of_another_site_may_not_open_the_traffic_view(
    simulator: Any, bridge_factory: Any
) -> None:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect("api/v1/traffic", headers={"Origin": "http://evil.example"})
    assert refused.value.status == 403


async def test_links_list_the_shared_link_and_each_device_s_plan(
    simulator: Any, bridge_factory: Any
) -> None:
    _, port = simulator
    _, session = await bridge_factory(
        [tcp_device("boiler", port), tcp_device("boiler-2", port, unit=1)]
    )
    body = await (await session.get("api/v1/links")).json()
    (link,) = body["links"]
    assert link["key"] == f"tcp://127.0.0.1:{port}"
    assert link["driver"] == "modbus-tcp"
    assert [d["id"] for d in link["devices"]] == ["boiler", "boiler-2"]
    assert "read holding 0..1 (2 registers, fc 3): temperature" in link["devices"][0]["plan"]
    assert body["traffic_watched"] is False
    detail = await (await session.get("api/v1/devices/boiler")).json()
    assert "p99_latency_ms" in detail["stats"]
    assert "last_error_at" in detail["stats"]


def tap_of(link: Link[Any]) -> Tap | None:
    """The link's tap, read afresh: mypy would keep ``link.tap`` narrowed to None across the
    calls that attach it."""
    return link.tap


async def test_the_traffic_of_a_tcp_link_is_captured_only_while_watched_and_names_errors(
    simulator: Any, bridge_factory: Any
) -> None:
    sim, port = simulator
    running, _ = await bridge_factory([tcp_device("boiler", port)])
    traffic: Traffic = running.bridge.traffic
    (link,) = [poller.link for poller in running.bridge.pollers]
    (tap,) = traffic.taps.values()
    await eventually(lambda: running.bridge.devices["boiler"].polls > 2)
    assert tap_of(link) is None
    assert tap.captured == 0
    viewer, kept = traffic.watch()
    assert tap_of(link) is tap
    assert kept == []
    await eventually(lambda: tap.captured >= 3)
    frames = [viewer.queue.get_nowait().decode() for _ in range(viewer.queue.qsize())]
    assert any('"request":"unit 1: read holding 0..1 (fc 3)"' in f for f in frames)
    # whole MBAP frames: the reply has the request's transaction id, protocol 0, unit 1
    exchange = next(e for e in map(json.loads, frames) if e["request"].endswith("0..1 (fc 3)"))
    sent, received = bytes.fromhex(exchange["sent"]), bytes.fromhex(exchange["received"])
    assert sent[:2] == received[:2]
    assert sent[2:4] == received[2:4] == b"\0\0"
    assert int.from_bytes(sent[4:6], "big") == len(sent) - 6
    assert sent[6:] == bytes([1, 3, 0, 0, 0, 2])  # unit 1, read holding 0, 2 registers
    assert received[6:9] == bytes([1, 3, 4])  # unit 1, function 3, 4 bytes
    sim.exception_for("holding", 0, 1, code=4)
    await eventually(lambda: any(b"exception 4" in f for _, f in tap.ring))
    sim.clear_faults()
    sim.silent = True
    await eventually(lambda: any(b"did not answer" in f for _, f in tap.ring))
    sim.silent = False
    traffic.leave(viewer)
    assert tap_of(link) is None
    captured = tap.captured
    await eventually(lambda: running.bridge.devices["boiler"].polls > 10)
    assert tap.captured == captured  # nothing recorded while nobody watches
    # a second viewer gets what was kept, oldest first, at most 200 a link
    _, kept = traffic.watch()
    assert 0 < len(kept) <= 200
    assert kept == [f for _, f in sorted(tap.ring)]


def test_an_exchange_frame_shows_bytes_as_hex_and_times_in_milliseconds() -> None:
    from bridge.traffic import exchange_json

    frame = exchange_json(
        "serial:/dev/ttyUSB0",
        Exchange("flow-a", "unit 3: read input 0..1 (fc 4)", b"\x03\x04\x00", b"\xff",
                 1_700_000_000.25, 0.0123, "a reply with a bad CRC"),
    )  # fmt: skip
    assert frame == {
        "type": "exchange", "link": "serial:/dev/ttyUSB0", "device": "flow-a",
        "request": "unit 3: read input 0..1 (fc 4)", "sent": "03 04 00", "received": "ff",
        "ts": "2023-11-14T22:13:20.250Z", "ms": 12.3, "error": "a reply with a bad CRC",
    }  # fmt: skip


async def test_rtu_and_serial_line_traffic_names_bad_crcs_and_garbage() -> None:
    from bridge.demo import demo_simulators

    def fast(data: dict[str, Any]) -> None:
        for device in data["devices"]:
            device.update(interval=0.05, timeout=0.2, backoff_max=0.2)
        data["server"] = {"port": 0}

    async with demo_simulators() as sims:
        server = await start_server(sims.config(edit=fast))
        try:
            traffic = server.bridge.traffic
            viewer, _ = traffic.watch()

            def errors(kind: str) -> list[dict[str, Any]]:
                frames = [json.loads(f) for tap in traffic.taps.values() for _, f in tap.ring]
                return [f for f in frames if f["error"] and kind in f["error"]]

            await eventually(
                lambda: len(traffic.taps) == 3 and all(t.ring for t in traffic.taps.values())
            )
            # a reply that looks right but for its CRC, on the bus of the flow meters
            sims.modbus_rtu.simulator.garbage = bytes.fromhex("03 03 02 00 07 00 00")
            (bad_crc, *_) = await eventually(lambda: errors("bad CRC"))
            assert bad_crc["device"] in ("flow-a", "flow-b")
            # the whole request frame, and the bad frame as it came, bytes the PDU would hide
            sent = bytes.fromhex(bad_crc["sent"])
            config = server.bridge.devices[bad_crc["device"]].config
            assert isinstance(config, ModbusRtuDevice)
            assert sent[0] == config.unit
            assert sent[1] == 3  # read holding
            assert crc16(sent[:-2]) == int.from_bytes(sent[-2:], "little")
            assert "03 03 02 00 07 00 00" in bad_crc["received"]
            sims.modbus_rtu.simulator.garbage = None
            # bytes that are no reading, from the scale
            sims.scale.garbage = b"#?!"
            (garbage, *_) = await eventually(lambda: errors("no usable reply"))
            assert garbage["device"] == "scale"
            assert garbage["request"] == "query 'SI\\r\\n'"
            assert garbage["sent"] == "53 49 0d 0a"  # SI\r\n
            assert "23 3f 21" in garbage["received"]  # #?!
            sims.scale.garbage = None
            traffic.leave(viewer)
        finally:
            await server.close()
