"""bridge.client.BridgeClient against a live bridge polling a real Modbus TCP simulator.

The resuming tests put a TCP proxy of our own between the client and the bridge, and cut
every connection through it while readings flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from conftest import BridgeFactory, eventually, tcp_device

from bridge.backoff import backoff
from bridge.client import (
    BridgeClient,
    BridgeError,
    BridgeUnavailable,
    Device,
    DeviceDetail,
    Event,
    Forbidden,
    Gap,
    InvalidValue,
    NotFound,
    Reading,
    StatusChange,
    Subscription,
    Unauthorized,
)
from bridge.server import RunningServer
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


def fast_client(url: str) -> BridgeClient:
    """A client that reconnects quickly, so that the tests spend little time backing off."""
    return BridgeClient(url, reconnect_delay=0.01, reconnect_max=0.05)


def port_of(running: RunningServer) -> int:
    port = urlsplit(running.url).port
    assert port is not None
    return port


def closed_port() -> int:
    """A port on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wave_points(count: int) -> list[dict[str, Any]]:
    """Points over one register that a sine moves: each poll publishes all of them."""
    return [
        {"id": f"w{i:02d}", "table": "holding", "address": 100, "type": "float32"}
        | ({"view_of": "w00"} if i else {})
        for i in range(count)
    ]


async def wave_bridge(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    count: int = 3,
    interval: float = 0.01,
    **server: Any,
) -> RunningServer:
    """A bridge on the boiler and on a fast ``wave`` device whose values always change."""
    sim, port = simulator
    sim.attach(1, "holding", 100, "float32", Sine(amplitude=50.0, period=0.5, offset=50.0))
    devices = [
        tcp_device("boiler", port),
        tcp_device("wave", port, points=wave_points(count), interval=interval),
    ]
    running, _ = await bridge_factory(devices, **server)
    return running


async def boiler_bridge(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory, **server: Any
) -> RunningServer:
    _, port = simulator
    running, _ = await bridge_factory([tcp_device("boiler", port)], **server)

    store = running.bridge.store
    await eventually(lambda: all(r.quality == "good" for r in store.device_readings("boiler")))
    return running


class Proxy:
    """A TCP proxy to a bridge that can cut every open connection, or refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refusing = False
        self.accepted = 0
        self.refused = 0
        self.port = 0
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    def cut(self) -> int:
        """Abort every open connection, both sides; how many sockets were cut."""
        cut = len(self._open)
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()
        return cut

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        ends = (writer, upstream)
        self._open.update(ends)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                for end in ends:
                    end.transport.abort()
                    self._open.discard(end)

        await asyncio.gather(pump(reader, upstream), pump(upstream_reader, writer))


class Collector:
    """Iterates a subscription in a task of its own, keeping every event."""

    def __init__(self, subscription: Subscription, first: list[Event] | None = None) -> None:
        self.subscription = subscription
        self.events: list[Event] = list(first or ())
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.subscription:
            self.events.append(event)

    @property
    def readings(self) -> list[Reading]:
        return [e for e in self.events if isinstance(e, Reading)]

    @property
    def gaps(self) -> list[Gap]:
        return [e for e in self.events if isinstance(e, Gap)]

    def last_seq(self) -> int:
        readings = self.readings
        return readings[-1].seq if readings else -1

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def published(running: RunningServer, device: str, after: int, upto: int) -> list[Any]:
    """What the bridge published for the device's points with after < seq <= upto."""
    store = running.bridge.store
    kept: list[Any] = [
        reading
        for _, point in store.select([device])
        for reading in store.history(device, point)
        if after < reading.seq <= upto
    ]
    return sorted(kept, key=lambda r: r.seq)


def same(client_side: list[Reading], bridge_side: list[Any]) -> None:
    """The client's readings are exactly the bridge's, in order."""

    def key(r: Any) -> tuple[int, str, str, Any, str]:
        return (r.seq, r.device, r.point, r.value, r.quality)

    assert [key(r) for r in client_side] == [key(r) for r in bridge_side]


# --------------------------------------------------------------------------- base URL


async def test_service_url_is_the_default_base(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running = await boiler_bridge(simulator, bridge_factory)
    for url in (running.url, running.url + "/"):
        monkeypatch.setenv("SERVICE_URL", url)
        async with BridgeClient() as bridge:
            assert bridge.base_url == running.url
            assert (await bridge.latest("boiler", "temperature")).value == 21.5


@pytest.mark.parametrize("trailing", ["", "/"])
async def test_service_url_with_a_path(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    monkeypatch: pytest.MonkeyPatch,
    trailing: str,
) -> None:
    running = await boiler_bridge(simulator, bridge_factory, root_path="/resource")
    assert running.url.endswith("/resource")
    monkeypatch.setenv("SERVICE_URL", running.url + trailing)
    async with BridgeClient() as bridge:
        assert [d.id for d in await bridge.devices()] == ["boiler"]
        assert (await bridge.latest("boiler", "pressure")).value == 1.52
        async with bridge.subscribe(points=["boiler/model"]) as stream:
            first = await anext(stream)
        assert isinstance(first, Reading)
        assert (first.point, first.value) == ("model", "BOILER-1")
    # the path is part of the base: without it, the bridge has no such route
    async with BridgeClient(running.url.removesuffix("/resource")) as bridge:
        with pytest.raises(NotFound) as missing:
            await bridge.devices()
        assert missing.value.status == 404
        assert "no route" in missing.value.detail


def test_no_base_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVICE_URL", raising=False)
    with pytest.raises(ValueError, match="SERVICE_URL"):
        BridgeClient()
    with pytest.raises(ValueError, match="http"):
        BridgeClient("127.0.0.1:5000")


# --------------------------------------------------------------------------- REST


async def test_every_rest_method_gives_typed_results(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, _ = simulator
    running = await boiler_bridge(simulator, bridge_factory, write_token="w-secret")
    async with BridgeClient(running.url, token="w-secret") as bridge:
        devices = await bridge.devices()
        assert devices == [
            Device(
                id="boiler",
                driver="modbus-tcp",
                status="online",
                last_success=devices[0].last_success,
                last_error=None,
                points=tuple(BOILER_VALUES),
            )
        ]
        assert isinstance(devices[0].last_success, datetime)

        detail = await bridge.device("boiler")
        assert isinstance(detail, DeviceDetail)
        assert (detail.id, detail.status, detail.interval, detail.timeout) == (
            "boiler",
            "online",
            0.05,
            0.5,
        )
        assert detail.point_ids == tuple(BOILER_VALUES)
        setpoint = detail.point("setpoint")
        assert setpoint is not None
        assert setpoint["max"] == 90
        assert detail.stats["polls"] >= 1

        reading = await bridge.latest("boiler", "temperature")
        assert isinstance(reading, Reading)
        assert (reading.device, reading.point, reading.value, reading.unit) == (
            "boiler",
            "temperature",
            21.5,
            "°C",
        )
        assert reading.good
        assert reading.error is None
        assert reading.ts is not None
        assert reading.ts.tzinfo is UTC
        assert abs(datetime.now(UTC) - reading.ts) < timedelta(seconds=5)
        assert reading.seq >= 1
        with pytest.raises(AttributeError):
            reading.value = 1.0  # type: ignore[misc]

        everything = await bridge.readings()
        assert {r.point: r.value for r in everything} == BOILER_VALUES
        chosen = await bridge.readings(points=["boiler/pressure", "boiler/alarm"])
        assert [(r.point, r.value) for r in chosen] == [("pressure", 1.52), ("alarm", True)]
        narrowed = await bridge.readings(devices=["boiler"], points=["model"])
        assert [(r.point, r.value) for r in narrowed] == [("model", "BOILER-1")]

        written = await bridge.write("boiler", "setpoint", 70.5)
        assert (written.point, written.value, written.quality) == ("setpoint", 70.5, "good")
        assert written.seq > reading.seq
        switched = await bridge.write("boiler", "pump_on", False)
        assert switched.value is False

        sim.units[1].set_value("holding", 0, "float32", 22.5)
        polled = await bridge.poll("boiler")
        assert {r.point: r.value for r in polled}["temperature"] == 22.5
        assert all(isinstance(r, Reading) and r.good for r in polled)

        history = await bridge.history("boiler", "temperature")
        assert [r.value for r in history] == [21.5, 22.5]
        assert [r.value for r in await bridge.history("boiler", "temperature", limit=1)] == [21.5]
        later = history[1].ts
        assert later is not None
        for since in (later, later.isoformat(), later.replace(tzinfo=None)):
            assert [r.value for r in await bridge.history("boiler", "temperature", since)] == [22.5]
        future = datetime.now(UTC) + timedelta(hours=1)
        assert await bridge.history("boiler", "temperature", since=future) == []


async def test_a_session_given_is_used_and_left_open(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    running, session = await bridge_factory([tcp_device("boiler", port)])
    bridge = BridgeClient(running.url, session=session)
    assert [d.id for d in await bridge.devices()] == ["boiler"]
    async with bridge.subscribe(points=["boiler/model"]) as stream:
        assert isinstance(await anext(stream), Reading)
    await bridge.close()
    assert not session.closed
    with pytest.raises(BridgeError, match="closed"):
        await bridge.devices()
    with pytest.raises(BridgeError, match="closed"):
        await anext(bridge.subscribe())


async def test_a_bad_reading_carries_its_error(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    points = [{"id": "far", "table": "holding", "address": 60000, "type": "uint16"}]
    sim.exception_for("holding", 60000, 60000, 2)
    running, _ = await bridge_factory([tcp_device("gauge", port, points=points)])
    async with BridgeClient(running.url) as bridge:

        async def failed() -> Reading | None:
            reading = await bridge.latest("gauge", "far")
            return reading if reading.seq else None

        reading: Reading = await eventually(failed)
        assert (reading.quality, reading.value, reading.good) == ("bad", None, False)
        assert reading.error


# --------------------------------------------------------------------------- errors and tokens


async def test_errors_carry_the_problem_s_status_and_detail(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    running = await boiler_bridge(simulator, bridge_factory, write_token="w-secret")
    async with BridgeClient(running.url, token="w-secret") as bridge:
        with pytest.raises(NotFound) as missing:
            await bridge.latest("nope", "temperature")
        error = missing.value
        assert isinstance(error, BridgeError)
        assert (error.status, error.title) == (404, "Not Found")
        assert "nope" in error.detail
        assert "boiler" in error.detail  # the devices there are
        assert error.type is not None
        assert error.type.startswith("https://")
        assert "404" in str(error)
        assert "nope" in str(error)

        with pytest.raises(NotFound, match="no point 'nope'"):
            await bridge.history("boiler", "nope")
        with pytest.raises(InvalidValue) as invalid:
            await bridge.write("boiler", "setpoint", 120.0)
        assert invalid.value.status == 422
        assert "90" in invalid.value.detail
        with pytest.raises(InvalidValue):
            await bridge.write("boiler", "setpoint", "warm")
        with pytest.raises(Forbidden) as forbidden:
            await bridge.write("boiler", "temperature", 30.0)
        assert "not writable" in forbidden.value.detail
        with pytest.raises(BridgeError) as bad:
            await bridge.history("boiler", "temperature", since="yesterday")
        assert bad.value.status == 400
        # a stream with an unknown device is refused, not retried
        with pytest.raises(NotFound) as refused:
            async for _ in bridge.subscribe(devices=["nope"]):
                pass
        assert "nope" in refused.value.detail


async def test_tokens(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running = await boiler_bridge(
        simulator, bridge_factory, read_token="r-secret", write_token="w-secret"
    )
    monkeypatch.delenv("BRIDGE_TOKEN", raising=False)
    async with BridgeClient(running.url) as anonymous:
        with pytest.raises(Unauthorized) as refused:
            await anonymous.devices()
        assert refused.value.status == 401
        assert "Bearer" in refused.value.detail
        with pytest.raises(Unauthorized):
            await anext(anonymous.subscribe())

    monkeypatch.setenv("BRIDGE_TOKEN", "r-secret")  # the default token
    async with BridgeClient(running.url) as reader:
        assert reader.token == "r-secret"
        assert (await reader.latest("boiler", "model")).value == "BOILER-1"
        async with reader.subscribe(devices=["boiler"]) as stream:
            assert isinstance(await anext(stream), Reading)
        with pytest.raises(Unauthorized, match="write token"):
            await reader.write("boiler", "setpoint", 60.0)

    async with BridgeClient(running.url, token="w-secret") as writer:
        assert (await writer.write("boiler", "setpoint", 60.0)).value == 60.0
    async with BridgeClient(running.url, token="wrong") as wrong:
        with pytest.raises(Unauthorized):
            await wrong.readings()


async def test_writes_disabled_is_forbidden(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    running = await boiler_bridge(simulator, bridge_factory)
    async with BridgeClient(running.url, token="anything") as bridge:
        with pytest.raises(Forbidden, match="writes are disabled") as refused:
            await bridge.write("boiler", "setpoint", 60.0)
        assert refused.value.status == 403


async def test_nothing_listening_is_bridge_unavailable() -> None:
    async with BridgeClient(f"http://127.0.0.1:{closed_port()}") as bridge:
        with pytest.raises(BridgeUnavailable) as unreachable:
            await bridge.devices()
        assert isinstance(unreachable.value, BridgeError)
        assert unreachable.value.status is None
        assert "cannot reach" in str(unreachable.value)


async def test_a_bridge_that_does_not_answer_is_unavailable_after_the_timeout() -> None:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with BridgeClient(f"http://127.0.0.1:{port}", timeout=0.2) as bridge:
            with pytest.raises(BridgeUnavailable, match=r"no answer within 0\.2 s"):
                await bridge.devices()
    finally:
        server.close()
        await server.wait_closed()


async def test_an_answer_that_is_not_a_problem_still_gives_a_useful_error() -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<h1>Bad Gateway</h1>", content_type="text/html")

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/gateway/api/v1/devices", html)
    app.router.add_get("/text/api/v1/devices", text)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with BridgeClient(f"http://127.0.0.1:{port}/gateway") as bridge:
            with pytest.raises(BridgeError) as failed:
                await bridge.devices()
            assert failed.value.status == 502
            assert "Bad Gateway" in failed.value.detail
            assert "base URL" in failed.value.detail
        async with BridgeClient(f"http://127.0.0.1:{port}/text") as bridge:
            with pytest.raises(BridgeError, match="not JSON"):
                await bridge.devices()
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- subscribing


async def test_subscribe_yields_the_snapshot_then_live_readings(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, _ = simulator
    running = await boiler_bridge(simulator, bridge_factory)
    async with BridgeClient(running.url) as bridge:
        stream = bridge.subscribe(devices=["boiler"])
        snapshot = [await anext(stream) for _ in BOILER_VALUES]
        assert all(isinstance(r, Reading) for r in snapshot)
        assert {r.point: r.value for r in snapshot if isinstance(r, Reading)} == BOILER_VALUES
        assert stream.boot == running.bridge.store.boot
        sim.units[1].set_value("holding", 0, "float32", 30.0)
        live = await anext(stream)
        assert isinstance(live, Reading)
        assert (live.point, live.value) == ("temperature", 30.0)
        assert live.seq == stream.last_seq == running.bridge.store.seq
        await stream.aclose()
        await eventually(lambda: not running.bridge.hub.subscribers)


async def test_breaking_out_of_the_loop_closes_the_websocket(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    running = await boiler_bridge(simulator, bridge_factory)
    hub = running.bridge.hub
    async with BridgeClient(running.url) as bridge:
        async for reading in bridge.subscribe():
            assert len(hub.subscribers) == 1
            assert isinstance(reading, Reading)
            break
        await eventually(lambda: not hub.subscribers)

        async with contextlib.aclosing(bridge.subscribe()) as stream:
            await anext(stream)
            assert len(hub.subscribers) == 1
        await eventually(lambda: not hub.subscribers)

        # closing the client ends its streams
        stream = bridge.subscribe()
        collector = Collector(stream)
        await eventually(lambda: collector.events)
        await bridge.close()
        await asyncio.wait_for(collector.task, 2.0)
        await eventually(lambda: not hub.subscribers)


async def test_status_changes_when_asked_for(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, _ = simulator
    running = await boiler_bridge(simulator, bridge_factory)
    async with BridgeClient(running.url) as bridge:
        stream = bridge.subscribe(devices=["boiler"], statuses=True)
        collector = Collector(stream)
        await eventually(lambda: len(collector.events) == len(BOILER_VALUES))
        sim.silent = True
        await eventually(lambda: any(isinstance(e, StatusChange) for e in collector.events))
        sim.silent = False
        await eventually(
            lambda: (
                [e.status for e in collector.events if isinstance(e, StatusChange)]
                == ["offline", "online"]
            )
        )
        await collector.stop()
    offline = next(e for e in collector.events if isinstance(e, StatusChange))
    assert (offline.device, offline.status) == ("boiler", "offline")
    assert offline.error
    assert isinstance(offline.ts, datetime)
    stale = [r for r in collector.readings if r.quality == "stale"]
    assert {r.point for r in stale} == set(BOILER_VALUES)


async def test_subscribe_waits_for_a_bridge_that_is_not_up_yet(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    running = await boiler_bridge(simulator, bridge_factory)
    async with Proxy(port_of(running)) as proxy, fast_client(proxy.url) as bridge:
        proxy.refusing = True
        collector = Collector(bridge.subscribe(devices=["boiler"]))
        await eventually(lambda: proxy.refused >= 3)
        assert not collector.events
        proxy.refusing = False
        await eventually(lambda: len(collector.events) == len(BOILER_VALUES))
        await collector.stop()
    assert collector.subscription.connects == 1


# --------------------------------------------------------------------------- resuming


async def test_cut_connections_lose_no_reading_and_repeat_none(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    """The issue's "done when": cut the connection several times while readings flow."""
    running = await wave_bridge(simulator, bridge_factory, count=3, history=100_000)
    store = running.bridge.store
    async with Proxy(port_of(running)) as proxy, fast_client(proxy.url) as bridge:
        stream = bridge.subscribe(devices=["wave"])
        collector = Collector(stream)
        await eventually(lambda: len(collector.readings) >= 3 + 30)
        for _ in range(6):
            seen, connects = len(collector.readings), stream.connects
            assert proxy.cut() == 2  # the client's side and the bridge's

            def resumed(seen: int = seen, connects: int = connects) -> bool:
                return stream.connects > connects and len(collector.readings) > seen + 30

            await eventually(resumed)
        upto = store.seq
        await eventually(lambda: collector.last_seq() >= upto)
        await collector.stop()
    assert proxy.accepted == 7
    assert stream.connects == 7
    assert not collector.gaps
    readings = collector.readings
    snapshot, live = readings[:3], readings[3:]
    assert sorted(r.point for r in snapshot) == ["w00", "w01", "w02"]
    start, end = max(r.seq for r in snapshot), readings[-1].seq
    expected = published(running, "wave", start, end)
    assert len(expected) > 200
    same(live, expected)  # every reading once, in seq order, none from the boiler


async def test_a_gap_is_yielded_when_history_no_longer_holds_what_was_missed(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    running = await wave_bridge(simulator, bridge_factory, count=3, history=2)
    store = running.bridge.store
    pairs = store.select(["wave"])
    async with Proxy(port_of(running)) as proxy, fast_client(proxy.url) as bridge:
        stream = bridge.subscribe(devices=["wave"])
        collector = Collector(stream)
        await eventually(lambda: len(collector.readings) >= 3 + 10)
        proxy.refusing = True
        proxy.cut()
        await eventually(lambda: proxy.refused >= 1)  # the client is done with its connection
        missed_from = stream.last_seq
        assert missed_from == collector.last_seq()
        await eventually(lambda: store.published_since(missed_from, pairs) is None)
        before = len(collector.events)
        proxy.refusing = False
        await eventually(lambda: len(collector.events) >= before + 1 + 3 + 10)
        await collector.stop()
    gap, *after = collector.events[before:]
    assert isinstance(gap, Gap)
    assert gap == Gap(since=missed_from, oldest=gap.oldest, boot_changed=False)
    assert gap.oldest > missed_from
    snapshot, live = after[:3], after[3:]
    assert all(isinstance(r, Reading) for r in after)
    assert sorted(r.point for r in snapshot if isinstance(r, Reading)) == ["w00", "w01", "w02"]
    seqs = [r.seq for r in live if isinstance(r, Reading)]
    assert seqs == sorted(set(seqs))
    assert seqs[0] > gap.oldest
    assert len(collector.gaps) == 1


async def test_a_restarted_bridge_is_a_gap_with_a_new_boot(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, _ = simulator
    first = await boiler_bridge(simulator, bridge_factory)
    second = await boiler_bridge(simulator, bridge_factory)
    async with Proxy(port_of(first)) as proxy, fast_client(proxy.url) as bridge:
        stream = bridge.subscribe(devices=["boiler"])
        collector = Collector(stream)
        await eventually(lambda: len(collector.events) == len(BOILER_VALUES))
        assert stream.boot == first.bridge.store.boot
        proxy.target_port = port_of(second)  # "the bridge restarted"
        proxy.cut()
        await eventually(lambda: len(collector.events) == 2 * len(BOILER_VALUES) + 1)
        sim.units[1].set_value("holding", 0, "float32", 30.0)
        await eventually(lambda: collector.readings[-1].value == 30.0)
        await collector.stop()
    gap = collector.events[len(BOILER_VALUES)]
    assert isinstance(gap, Gap)
    assert gap.boot_changed
    assert stream.boot == second.bridge.store.boot
    after = collector.readings[len(BOILER_VALUES) :]
    assert {r.point: r.value for r in after[:-1]} == BOILER_VALUES
    assert after[-1].seq == second.bridge.store.seq


async def test_a_bridge_restarted_on_its_port_is_followed(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    first = await boiler_bridge(simulator, bridge_factory)
    async with fast_client(first.url) as bridge:
        collector = Collector(bridge.subscribe(devices=["boiler"]))
        await eventually(lambda: len(collector.events) == len(BOILER_VALUES))
        await first.close()  # closes the stream (1001), then nothing listens for a while
        second = await boiler_bridge(simulator, bridge_factory, port=port_of(first))
        # the snapshot after the gap; it may hold points the new bridge has not read yet,
        # whose first readings then follow it
        await eventually(lambda: len(collector.events) >= 2 * len(BOILER_VALUES) + 1)
        await collector.stop()
    gap = collector.events[len(BOILER_VALUES)]
    assert isinstance(gap, Gap)
    assert gap.boot_changed
    assert collector.subscription.boot == second.bridge.store.boot


async def test_a_client_closed_for_being_slow_resumes_without_loss(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    count = 40
    running = await wave_bridge(
        simulator, bridge_factory, count=count, interval=0.005,
        subscriber_queue=4, history=100_000,
    )  # fmt: skip
    hub, store = running.bridge.hub, running.bridge.store
    async with fast_client(running.url) as bridge:
        stream = bridge.subscribe(devices=["wave"])
        first = await anext(stream)
        # the client now reads nothing: its buffers fill, then its queue at the bridge
        await eventually(lambda: hub.overflows >= 1, within=10.0)
        collector = Collector(stream, [first])
        upto = store.seq
        await eventually(lambda: collector.last_seq() >= upto, within=10.0)
        await collector.stop()
    assert stream.connects >= 2
    assert not collector.gaps
    readings = collector.readings
    snapshot, live = readings[:count], readings[count:]
    assert {r.point for r in snapshot} == {f"w{i:02d}" for i in range(count)}
    start, end = max(r.seq for r in snapshot), readings[-1].seq
    same(live, published(running, "wave", start, end))


async def test_subscribe_since_resumes_from_a_saved_position(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, _ = simulator
    running = await boiler_bridge(simulator, bridge_factory)
    async with BridgeClient(running.url) as bridge:
        async with bridge.subscribe(devices=["boiler"]) as stream:
            for _ in BOILER_VALUES:
                await anext(stream)
            saved = (stream.last_seq, stream.boot)
        assert saved[0] is not None
        for value in (30.0, 31.0):
            sim.units[1].set_value("holding", 0, "float32", value)
            await eventually(partial(published_value, running, value))
        async with bridge.subscribe(devices=["boiler"], since=saved[0], boot=saved[1]) as stream:
            missed = [await anext(stream) for _ in range(2)]
        assert [(r.point, r.value) for r in missed if isinstance(r, Reading)] == [
            ("temperature", 30.0),
            ("temperature", 31.0),
        ]
        # with a boot of another process, a gap and a snapshot
        async with bridge.subscribe(since=saved[0], boot="0" * 16) as stream:
            gap = await anext(stream)
            assert isinstance(gap, Gap)
            assert gap.boot_changed
            assert isinstance(await anext(stream), Reading)


def published_value(running: RunningServer, value: float) -> bool:
    return bool(running.bridge.store.latest("boiler", "temperature").value == value)


def test_reconnection_backoff_doubles_with_jitter_up_to_a_cap() -> None:
    bridge = BridgeClient("http://127.0.0.1:5000")
    assert (bridge.reconnect_delay, bridge.reconnect_max) == (0.1, 10.0)
    for failures, nominal in ((0, 0.1), (1, 0.2), (3, 0.8), (7, 10.0), (60, 10.0)):
        delays = [
            backoff(failures + 1, bridge.reconnect_delay, bridge.reconnect_max) for _ in range(200)
        ]
        assert all(0.8 * nominal <= d <= min(1.2 * nominal, 10.0) for d in delays), failures
        assert len(set(delays)) > 1  # jittered


def test_the_client_imports_nothing_of_the_service_or_the_drivers() -> None:
    script = (
        "import sys, bridge.client; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('bridge', 'drivers', 'simulators', 'pymodbus', 'serial', 'pydantic', 'yaml'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    outside = [m for m in loaded if m not in ("bridge", "bridge.backoff", "bridge.states")]
    assert all(m.startswith("bridge.client") for m in outside), outside
    assert "bridge.client.rest" in loaded
