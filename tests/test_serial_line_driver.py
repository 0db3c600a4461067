"""The serial-line driver against line instruments on real pseudo-terminals.

Every test talks to :class:`simulators.serial_line.LineInstrument` through a pty, the way
the bridge talks to a scale on ``/dev/ttyACM0``; the line splitting and the port channel
also get unit tests of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import BridgeFactory, eventually

from drivers.base import DeviceError, DeviceTimeout, DriverError, LinkError, PointFailure
from drivers.serial_line.config import SerialLineDevice
from drivers.serial_line.driver import SerialLineDriver
from drivers.serial_line.framing import LineChannel, LineSplitter
from drivers.serial_line.link import SerialLineLink
from simulators.serial_line import LineInstrument

SICS_REGEX = r"^S S\s+(?P<weight>-?\d+(\.\d+)?) g"
PARSE: dict[str, dict[str, Any]] = {
    "sics": {"regex": SICS_REGEX},
    "json": {"json": True},
    "csv": {"csv": ["weight", "temperature", "stable"]},
}
POINTS: dict[str, list[dict[str, Any]]] = {
    "sics": [{"id": "weight", "unit": "g"}],
    "json": [
        {"id": "weight", "unit": "g"},
        {"id": "temperature"},
        {"id": "stable", "type": "bool"},
    ],
    "csv": [
        {"id": "weight", "unit": "g"},
        {"id": "temp_k", "field": "temperature", "offset": 273.15},
        {"id": "stable", "type": "bool"},
    ],
}
EXPECTED: dict[str, dict[str, Any]] = {
    "sics": {"weight": 123.45},
    "json": {"weight": 123.45, "temperature": 21.5, "stable": True},
    "csv": {"weight": 123.45, "temp_k": 294.65, "stable": True},
}

Start = Callable[..., Awaitable[LineInstrument]]


def line_device(
    path: str, fmt: str = "sics", device_id: str = "scale", **extra: Any
) -> dict[str, Any]:
    """A serial-line device entry for an instrument of this format, with test timings."""
    entry: dict[str, Any] = {
        "id": device_id, "driver": "serial-line", "connection": {"port": path},
        "command": "SI\r\n", "parse": PARSE[fmt], "points": POINTS[fmt],
        "interval": 0.05, "timeout": 0.2, "backoff_max": 0.2,
    }  # fmt: skip
    if extra.get("mode") == "stream":
        del entry["command"]
    entry.update(extra)
    return entry


@asynccontextmanager
async def opened(
    *entries: dict[str, Any],
) -> AsyncIterator[tuple[SerialLineLink, list[SerialLineDevice]]]:
    devices = [SerialLineDevice.model_validate(entry) for entry in entries]
    driver = SerialLineDriver()
    link = driver.open_link(driver.link_key(devices[0]), devices)
    assert isinstance(link, SerialLineLink)
    await link.open()
    try:
        yield link, devices
    finally:
        await link.close()


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Starts line instruments on ptys; all are stopped after the test."""
    started: list[LineInstrument] = []

    async def make(**options: Any) -> LineInstrument:
        instrument = LineInstrument(**options)
        started.append(instrument)
        await instrument.start()
        return instrument

    yield make
    for instrument in started:
        await instrument.stop()


# query mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["sics", "json", "csv"])
async def test_query_mode_reads_every_parse_kind(start: Start, fmt: str) -> None:
    sim = await start(format=fmt)
    async with opened(line_device(sim.path, fmt)) as (link, (device,)):
        assert link.is_open
        assert dict(await link.read(device)) == EXPECTED[fmt]
        sim.values["weight"] = -7.5
        assert (await link.read(device))["weight"] == -7.5
        sim.stable = False
        if fmt == "sics":
            # "S D" is a dynamic (unsettled) weight: the demo's regex takes stable ones only
            with pytest.raises(DeviceError, match="garbage"):
                await link.read(device)
        else:
            assert (await link.read(device))["stable"] is False
        assert sim.commands == [b"SI\r\n"] * 3
    assert not link.is_open


async def test_unusable_lines_before_the_reply_are_counted_and_skipped(start: Start) -> None:
    sim = await start(format="sics")
    async with opened(line_device(sim.path, max_line=32)) as (link, (device,)):
        # a garbage line, one that does not decode, an over-long one, an echo of the
        # command and an empty line, all in front of the real answer
        sim.stray = b"S S  garbage g\r\n\xff\xfe\r\n" + b"9" * 40 + b"\r\nSI\r\n\r\n"
        for _ in range(2):
            assert dict(await link.read(device)) == {"weight": 123.45}
        assert link.counters("scale") == {"lines": 2, "garbage": 4, "partial": 0, "overlong": 2}


async def test_only_garbage_is_a_device_error_never_a_value(start: Start) -> None:
    sim = await start(format="sics")
    async with opened(line_device(sim.path)) as (link, (device,)):
        sim.garbage = b"S S  12x.45 g\r\n"
        started = time.monotonic()
        with pytest.raises(
            DeviceError, match=r"no usable reply to 'SI\\r\\n' within 0.2 s"
        ) as caught:
            await link.read(device)
        assert time.monotonic() - started < 0.2 * 1.9
        assert "1 garbage line(s) (last: 'S S  12x.45 g')" in str(caught.value)
        assert not isinstance(caught.value, DeviceTimeout)
        assert link.counters("scale")["garbage"] == 1
        sim.garbage = None
        assert dict(await link.read(device)) == {"weight": 123.45}


async def test_a_partial_reply_is_counted_and_never_becomes_a_value(start: Start) -> None:
    sim = await start(format="csv")
    async with opened(line_device(sim.path, "csv")) as (link, (device,)):
        sim.partial = True  # "123.45" without a terminator: a weight that looks fine
        with pytest.raises(DeviceError, match=r"1 partial line\(s\) \(last: '123.45'\)"):
            await link.read(device)
        sim.partial = False
        sim.values["weight"] = 5.25
        assert dict(await link.read(device)) == {**EXPECTED["csv"], "weight": 5.25}
        assert link.counters("scale") == {"lines": 1, "garbage": 0, "partial": 1, "overlong": 0}


async def test_an_overlong_line_is_dropped_before_its_terminator_arrives(start: Start) -> None:
    sim = await start(format="json")
    async with opened(line_device(sim.path, "json", max_line=64)) as (link, (device,)):
        sim.garbage = b"X" * 500  # no terminator at all
        with pytest.raises(DeviceError, match=r"1 over-long line\(s\)"):
            await link.read(device)
        assert link.buffered < 64  # not kept while waiting for a terminator
        sim.garbage = None
        sim.overlong = 100  # with a terminator
        with pytest.raises(DeviceError, match=r"1 over-long line\(s\)"):
            await link.read(device)
        sim.overlong = 0
        assert dict(await link.read(device)) == EXPECTED["json"]
        assert link.counters("scale") == {"lines": 1, "garbage": 0, "partial": 0, "overlong": 2}


async def test_a_late_reply_is_dropped_before_the_next_query(start: Start) -> None:
    sim = await start(format="sics")
    async with opened(line_device(sim.path, timeout=0.1)) as (link, (device,)):
        sim.delay = 0.15
        with pytest.raises(DeviceTimeout):
            await link.read(device)
        await eventually(lambda: link.buffered)  # the late answer is waiting
        sim.delay = 0.0
        sim.values["weight"] = 1.0
        assert dict(await link.read(device)) == {"weight": 1.0}  # not the late 123.45
        # a late answer cut short is a partial line
        sim.delay, sim.partial = 0.15, True
        with pytest.raises(DeviceTimeout):
            await link.read(device)
        await eventually(lambda: link.buffered)
        sim.delay, sim.partial = 0.0, False
        assert dict(await link.read(device)) == {"weight": 1.0}
        assert link.counters("scale") == {"lines": 2, "garbage": 0, "partial": 1, "overlong": 0}


async def test_silence_is_a_timeout_within_the_timeout(start: Start) -> None:
    sim = await start(format="sics")
    async with opened(line_device(sim.path, timeout=0.3)) as (link, (device,)):
        sim.silent = True
        started = time.monotonic()
        with pytest.raises(DeviceTimeout, match=r"^no reply to 'SI\\r\\n' within 0.3 s$"):
            await link.read(device)
        # one timeout, not two (with room for a loaded machine's late timer)
        assert 0.3 <= time.monotonic() - started < 0.3 * 1.9
        sim.silent = False
        assert dict(await link.read(device)) == {"weight": 123.45}
        assert link.counters("scale") == {"lines": 1, "garbage": 0, "partial": 0, "overlong": 0}


async def test_devices_on_one_port_take_turns(start: Start) -> None:
    sim = await start(format="sics")
    weight = line_device(sim.path, device_id="weight")
    raw = line_device(
        sim.path,
        device_id="raw",
        parse={"regex": r"^S (?P<status>[SD]) +(?P<weight>\S+) (?P<unit>\S+)$"},
        points=[
            {"id": "status", "type": "str"},
            {"id": "grams", "field": "weight", "scale": 1000},
            {"id": "unit", "type": "str"},
        ],
    )
    async with opened(weight, raw) as (link, (first, second)):
        assert dict(await link.read(first)) == {"weight": 123.45}
        assert dict(await link.read(second)) == {"status": "S", "grams": 123450.0, "unit": "g"}
        assert link.counters("raw")["lines"] == 1
        assert link.counters("nobody") == {}


# the port going away -------------------------------------------------------------------


async def test_the_port_disappearing_is_a_link_error(start: Start, tmp_path: Path) -> None:
    sim = await start(format="sics", link_dir=str(tmp_path))
    async with opened(line_device(sim.path, timeout=5)) as (link, (device,)):
        assert dict(await link.read(device)) == {"weight": 123.45}
        # while a read waits for its answer
        sim.silent = True
        reading = asyncio.create_task(link.read(device))
        await eventually(lambda: len(sim.commands) == 2)
        started = time.monotonic()
        sim.unplug()
        with pytest.raises(LinkError, match=sim.path):
            await reading
        assert time.monotonic() - started < 1  # at once, not after the 5 s timeout
        assert not link.is_open
        with pytest.raises(LinkError):  # and on every read after
            await link.read(device)
        await link.close()
        with pytest.raises(LinkError, match="cannot open"):
            await link.open()
        # plugged in again under the same name, the link reopens
        await sim.replug()
        sim.silent = False
        await link.open()
        assert dict(await link.read(device)) == {"weight": 123.45}


async def test_the_port_disappearing_between_polls_is_a_link_error(start: Start) -> None:
    sim = await start(format="json", mode="stream", stream_interval=0.02)
    async with opened(line_device(sim.path, "json", mode="stream")) as (link, (device,)):
        assert dict(await link.read(device)) == EXPECTED["json"]
        await sim.stop()
        await eventually(lambda: not link.is_open)
        with pytest.raises(LinkError):
            await link.read(device)


# stream mode -----------------------------------------------------------------------------


async def first_failure(link: SerialLineLink, device: SerialLineDevice) -> DriverError:
    """Poll until a poll fails (lines sent before a fault was switched on come first)."""
    for _ in range(100):
        try:
            await link.read(device)
        except DriverError as exc:
            return exc
    raise AssertionError("no poll failed")


async def test_stream_mode_publishes_the_newest_line(start: Start) -> None:
    sim = await start(format="json", mode="stream", stream_interval=0.02)
    async with opened(line_device(sim.path, "json", mode="stream")) as (link, (device,)):
        assert dict(await link.read(device)) == EXPECTED["json"]
        before = link.counters("scale")["lines"]
        sent = sim.lines_sent
        # lines pile up between polls: two old values, then three new ones
        await eventually(lambda: sim.lines_sent >= sent + 2)
        sim.values["weight"] = 99.5
        changed = sim.lines_sent
        await eventually(lambda: sim.lines_sent >= changed + 3)
        assert (await link.read(device))["weight"] == 99.5
        # every usable line is counted, though only the newest is published (the last
        # one sent may still be on its way)
        assert link.counters("scale")["lines"] - before >= 4
        assert sim.commands == []


async def test_stream_mode_polled_faster_than_its_lines_gets_each_line(start: Start) -> None:
    sim = await start(format="csv", mode="stream", stream_interval=0.1)
    async with opened(line_device(sim.path, "csv", mode="stream")) as (link, (device,)):
        await link.read(device)  # in step with the stream
        before = link.counters("scale")["lines"]
        for step in range(1, 5):
            sim.values["weight"] = float(step)
            assert (await link.read(device))["weight"] == step
        # (more if the machine stalled past a line)
        assert link.counters("scale")["lines"] - before >= 4


async def test_stream_mode_counts_unusable_lines_and_never_publishes_them(start: Start) -> None:
    sim = await start(format="csv", mode="stream", stream_interval=0.02)
    entry = line_device(sim.path, "csv", mode="stream", max_line=32, timeout=0.15)
    async with opened(entry) as (link, (device,)):
        await link.read(device)
        sim.garbage = b"12.5;21.5;1\r\n"
        # lines sent before the switch may still be waiting: read until they are gone
        failure = await first_failure(link, device)
        assert isinstance(failure, DeviceError)
        assert "garbage line(s) (last: '12.5;21.5;1')" in str(failure)
        sim.garbage = None
        sim.overlong = 40
        failure = await first_failure(link, device)
        assert isinstance(failure, DeviceError)
        assert "over-long line(s)" in str(failure)
        sim.overlong = 0
        assert dict(await link.read(device)) == EXPECTED["csv"]
        counts = link.counters("scale")
        assert counts["garbage"] >= 1
        assert counts["overlong"] >= 1


async def test_stream_mode_drops_a_line_cut_off_by_a_pause(start: Start) -> None:
    # half lines with pauses longer than the line gap (50 ms) between them
    sim = await start(format="csv", mode="stream", stream_interval=0.08)
    async with opened(line_device(sim.path, "csv", mode="stream", timeout=0.3)) as (
        link,
        (device,),
    ):
        await link.read(device)
        sim.partial = True
        failure = await first_failure(link, device)
        assert isinstance(failure, DeviceError)
        assert "partial line(s)" in str(failure)
        sim.partial = False
        sim.values["weight"] = 2.0
        values = await link.read(device)
        assert values["weight"] == 2.0
        assert not any(isinstance(v, PointFailure) for v in values.values())
        assert link.counters("scale")["partial"] >= 2


async def test_stream_silence_is_a_timeout(start: Start) -> None:
    sim = await start(format="json", mode="stream", stream_interval=0.02)
    async with opened(line_device(sim.path, "json", mode="stream", timeout=0.3)) as (
        link,
        (device,),
    ):
        await link.read(device)
        sim.silent = True
        with contextlib.suppress(DeviceTimeout):
            await link.read(device)  # may still find lines sent before the silence
        started = time.monotonic()
        with pytest.raises(DeviceTimeout, match=r"^no line from the device within 0\.3 s$"):
            await link.read(device)
        assert time.monotonic() - started < 0.3 * 1.9
        sim.silent = False
        assert dict(await link.read(device)) == EXPECTED["json"]


# through the whole bridge --------------------------------------------------------------


async def test_readings_of_a_line_instrument_appear_over_rest(
    start: Start, bridge_factory: BridgeFactory
) -> None:
    scale = await start(format="sics")
    sensor = await start(format="json", mode="stream", stream_interval=0.02)
    _, http = await bridge_factory(
        [
            line_device(scale.path),
            line_device(sensor.path, "json", device_id="sensor", mode="stream"),
        ]
    )

    async def readings(device: str) -> dict[str, Any]:
        async with http.get(f"api/v1/devices/{device}/readings") as response:
            assert response.status == 200
            body = await response.json()
        found = body["readings"] if isinstance(body, dict) else body
        return {r["point"]: r for r in found if r["quality"] == "good"}

    weight = (await eventually(lambda: readings("scale")))["weight"]
    assert weight["value"] == 123.45
    assert weight["unit"] == "g"
    sensor_readings = await eventually(lambda: readings("sensor"))
    assert {p: r["value"] for p, r in sensor_readings.items()} == EXPECTED["json"]

    scale.values["weight"] = 200.0

    async def changed() -> bool:
        return bool((await readings("scale")).get("weight", {}).get("value") == 200.0)

    await eventually(changed)


# the pieces ----------------------------------------------------------------------------


def test_line_splitter_takes_whole_lines_and_drops_overlong_ones_early() -> None:
    splitter = LineSplitter(b"\r\n", max_line=8)
    buffer = bytearray(b"one\r\ntwo\r\nthr")
    assert splitter.take(buffer) == ([b"one", b"two"], 0)
    assert buffer == b"thr"
    buffer += b"ee\r"  # a terminator split across chunks
    assert splitter.take(buffer) == ([], 0)
    buffer += b"\n12345678\r\n123456789\r\n"
    assert splitter.take(buffer) == ([b"three", b"12345678"], 1)
    # an over-long line is noticed before its terminator, and skipped up to it
    buffer += b"0123456789"
    assert splitter.take(buffer) == ([], 1)
    assert len(buffer) <= 1
    buffer += b"more of it\r"
    assert splitter.take(buffer) == ([], 0)
    buffer += b"\nnext\r\n"
    assert splitter.take(buffer) == ([b"next"], 0)
    assert not splitter.pending(buffer)


def test_a_channel_cuts_a_line_after_a_pause_and_bounds_what_it_keeps() -> None:
    channel = LineChannel()
    channel.eol, channel.gap = b"\n", 0.05
    channel.data_received(b"line 1\nhalf a li")
    channel.last_byte_at = time.monotonic() - 1  # a long pause
    channel.data_received(b"line 2\n")
    assert channel.buffer == b"line 1\nline 2\n"
    assert channel.cut_lines == 1

    channel = LineChannel()
    channel.eol, channel.limit = b"\n", 100
    for number in range(30):
        channel.data_received(b"line %02d\n" % number)
    assert len(channel.buffer) <= 100
    assert channel.buffer.endswith(b"line 29\n")
    assert channel.buffer.startswith(b"line ")
    assert channel.trims > 0
    assert not channel.midline


async def test_skipped_lines_are_counted_in_metrics(
    start: Start, bridge_factory: BridgeFactory
) -> None:
    sim = await start(format="sics")
    sim.stray = b"S S  garbage g\r\n"
    _, session = await bridge_factory([line_device(sim.path)])

    async def garbage_counted() -> bool:
        async with session.get("metrics") as response:
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            text = await response.text()
        series = 'device_bridge_driver_events_total{device="scale",driver="serial-line",'
        counts = {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith(series)
        }
        return (
            counts.get(series + 'event="garbage"}', 0) >= 1
            and series + 'event="partial"}' in counts
            and series + 'event="overlong"}' in counts
        )

    await eventually(garbage_counted)
