"""Writes (README, "Writes"): a live bridge writing to a real Modbus TCP simulator and a
line instrument on a pty, reading back what it wrote, under the write token's rules."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import BOILER_POINTS, BridgeFactory, all_good, eventually, get_json, tcp_device
from driver_cases import line_device

from bridge.config import ConfigError, parse_config
from bridge.logs import JsonFormatter
from drivers.base import BadValue
from drivers.serial_line.config import SerialLineDevice
from drivers.serial_line.driver import SerialLineDriver
from drivers.serial_line.writes import write_command
from simulators.modbus import LoggedRequest, ModbusSimulator
from simulators.serial_line import LineInstrument

PROBLEM = "application/problem+json"
WRITER = "agent:s3cret"
AUTH = {"Authorization": "Bearer s3cret"}
WRITE_FUNCTIONS = frozenset({5, 6, 15, 16})

#: the boiler with every writable kind: a float in little-endian word order, a coil, two
#: bits of one status register, a scaled integer and a string
POINTS: list[dict[str, Any]] = [
    *(p for p in BOILER_POINTS if p["id"] not in ("alarm", "model")),
    {"id": "alarm", "table": "holding", "address": 30, "type": "bool", "bit": 3,
     "writable": True},
    {"id": "burner", "table": "holding", "address": 30, "type": "bool", "bit": 0,
     "writable": True},
    {"id": "model", "table": "holding", "address": 40, "type": "string", "length": 8,
     "writable": True},
    {"id": "level", "table": "holding", "address": 50, "type": "int16", "scale": 0.1,
     "offset": -10, "writable": True, "unit": "%"},
]  # fmt: skip


def holding(sim: ModbusSimulator, address: int, type: Any, **orders: Any) -> Any:
    return sim.units[1].get_value("holding", address, type, **orders)


def writes(sim: ModbusSimulator) -> list[LoggedRequest]:
    return [r for r in sim.requests if r.function in WRITE_FUNCTIONS]


async def put(
    session: aiohttp.ClientSession,
    point: str,
    value: Any,
    status: int = 200,
    device: str = "boiler",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """PUT a value; the answer's body, after checking its status and content type."""
    async with session.put(
        f"api/v1/devices/{device}/points/{point}",
        json={"value": value},
        headers=AUTH if headers is None else headers,
    ) as response:
        body: dict[str, Any] = await response.json(content_type=None)
        assert response.status == status, body
        wanted = "application/json" if status == 200 else PROBLEM
        assert response.content_type == wanted
        return body


async def start_boiler(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory, interval: float
) -> tuple[ModbusSimulator, aiohttp.ClientSession]:
    sim, port = simulator
    sim.units[1].set_value("holding", 50, "int16", 325)  # level 22.5
    _, session = await bridge_factory(
        [tcp_device("boiler", port, points=POINTS, interval=interval)], write_token=WRITER
    )
    await eventually(lambda: all_good(session, "boiler", headers=AUTH))
    return sim, session


@pytest.fixture
async def boiler(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> tuple[ModbusSimulator, aiohttp.ClientSession]:
    """The boiler's simulator and a session on a bridge polling it, writes enabled."""
    return await start_boiler(simulator, bridge_factory, interval=0.05)


@pytest.fixture
async def still_boiler(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> tuple[ModbusSimulator, aiohttp.ClientSession]:
    """As ``boiler``, but polled once and then not for a minute: what the store holds
    changes only by the test's writes."""
    return await start_boiler(simulator, bridge_factory, interval=60.0)


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bridge.audit"]


# --------------------------------------------------------------------------- what the issue asks


async def test_a_float_setpoint_in_little_endian_word_order_is_written_and_read_back(
    boiler: tuple[ModbusSimulator, aiohttp.ClientSession],
) -> None:
    sim, session = boiler
    reading = await put(session, "setpoint", 70.5)
    assert (reading["device"], reading["point"]) == ("boiler", "setpoint")
    assert (reading["value"], reading["quality"]) == (70.5, "good")
    assert holding(sim, 20, "float32", word_order="little") == 70.5
    # the first register is the low word: the value is not there in big-endian word order
    assert holding(sim, 20, "float32") != 70.5
    shown = await get_json(session, "api/v1/devices/boiler/points/setpoint", headers=AUTH)
    assert (shown["value"], shown["quality"], shown["seq"]) == (70.5, "good", reading["seq"])


async def test_a_coil_is_toggled_and_follows_in_the_simulator(
    boiler: tuple[ModbusSimulator, aiohttp.ClientSession],
) -> None:
    sim, session = boiler
    assert sim.units[1].get_bits("coil", 0) == [True]
    for value in (False, True, False):
        reading = await put(session, "pump_on", value)
        assert (reading["value"], reading["quality"]) == (value, "good")
        assert sim.units[1].get_bits("coil", 0) == [value]
    assert [r.function for r in writes(sim)] == [5, 5, 5]


async def test_one_bit_of_a_status_register_is_set_and_the_other_bits_are_kept(
    boiler: tuple[ModbusSimulator, aiohttp.ClientSession],
) -> None:
    sim, session = boiler
    sim.units[1].set_registers("holding", 30, [0b1010_0000_0100_1000])  # alarm (bit 3) on
    await eventually(lambda: put_reads(session, "burner", False))

    reading = await put(session, "burner", True)
    assert (reading["value"], reading["quality"]) == (True, "good")
    assert sim.units[1].get_registers("holding", 30) == [0b1010_0000_0100_1001]
    reading = await put(session, "alarm", False)
    assert reading["value"] is False
    assert sim.units[1].get_registers("holding", 30) == [0b1010_0000_0100_0001]
    readings = await get_json(session, "api/v1/devices/boiler/readings", headers=AUTH)
    values = {r["point"]: r["value"] for r in readings["readings"]}
    assert (values["alarm"], values["burner"]) == (False, True)
    # read-modify-write: a read of the register, then a single-register write, in a row
    log = sim.requests
    at = [i for i, r in enumerate(log) if r.function == 6]
    assert len(at) == 2
    for i in at:
        assert (log[i - 1].function, log[i - 1].address, log[i - 1].count) == (3, 30, 1)
        assert (log[i].address, log[i].count) == (30, 1)


async def put_reads(session: aiohttp.ClientSession, point: str, value: Any) -> bool:
    reading = await get_json(session, f"api/v1/devices/boiler/points/{point}", headers=AUTH)
    return bool(reading["value"] == value)


async def test_a_scaled_integer_takes_engineering_units(
    boiler: tuple[ModbusSimulator, aiohttp.ClientSession],
) -> None:
    sim, session = boiler
    assert (await put_reads(session, "level", 22.5)) is True
    reading = await put(session, "level", 57.3)
    assert reading["value"] == 57.3
    assert holding(sim, 50, "int16") == 673  # (57.3 - -10) / 0.1
    reading = await put(session, "level", -12)
    assert reading["value"] == -12.0
    assert holding(sim, 50, "int16") == -20


async def test_a_string_point_is_written_padded_with_nuls(
    boiler: tuple[ModbusSimulator, aiohttp.ClientSession],
) -> None:
    sim, session = boiler
    reading = await put(session, "model", "PUMP-2")
    assert reading["value"] == "PUMP-2"
    assert holding(sim, 40, "string", length=8) == "PUMP-2"
    assert sim.units[1].get_registers("holding", 43, 5) == [0] * 5
    await put(session, "model", "ABCDEFGHIJKLMNOP")  # exactly 16 characters
    assert holding(sim, 40, "string", length=8) == "ABCDEFGHIJKLMNOP"
    body = await put(session, "model", "ABCDEFGHIJKLMNOPQ", status=422)
    assert "longer" in body["detail"]


NUMBERS: list[tuple[dict[str, Any], Any, Any]] = [
    ({"type": "int16"}, -1234, -1234),
    ({"type": "uint16", "byte_order": "little"}, 65535, 65535),
    ({"type": "int32", "word_order": "little"}, -123456789, -123456789),
    ({"type": "uint32", "byte_order": "little"}, 4_000_000_000, 4_000_000_000),
    ({"type": "int64", "byte_order": "little", "word_order": "little"}, -(2**62) - 7, -(2**62) - 7),
    ({"type": "uint64"}, 2**64 - 1, 2**64 - 1),
    ({"type": "float32", "byte_order": "little"}, 21.25, 21.25),
    ({"type": "float64", "word_order": "little"}, 1234.5678, 1234.5678),
    ({"type": "uint32", "word_order": "little", "scale": 0.001}, 1234.567, 1234567),
    ({"type": "int16", "scale": 0.5, "offset": 100}, 37.5, -125),
    ({"type": "float32", "scale": 2, "offset": 1}, 7.0, 3.0),
]


@pytest.mark.parametrize(("layout", "value", "raw"), NUMBERS, ids=lambda x: str(x))
async def test_every_numeric_type_and_order_is_written_as_the_simulator_reads_it(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    layout: dict[str, Any],
    value: Any,
    raw: Any,
) -> None:
    sim, port = simulator
    point = {"id": "n", "table": "holding", "address": 100, "writable": True, **layout}
    _, session = await bridge_factory(
        [tcp_device("boiler", port, points=[point])], write_token=WRITER
    )
    await eventually(lambda: all_good(session, "boiler", headers=AUTH))
    reading = await put(session, "n", value)
    assert (reading["value"], reading["quality"]) == (value, "good")
    orders = {k: v for k, v in layout.items() if k in ("byte_order", "word_order")}
    assert holding(sim, 100, layout["type"], **orders) == raw


# --------------------------------------------------------------------------- who may write


async def test_without_the_write_token_nothing_is_written(
    boiler: tuple[ModbusSimulator, aiohttp.ClientSession],
) -> None:
    sim, session = boiler
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        body = await put(session, "setpoint", 80.0, status=401, headers=headers)
        assert "write token" in body["detail"]
    assert writes(sim) == []
    assert holding(sim, 20, "float32", word_order="little") == 65.0


async def test_a_read_token_cannot_write(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    _, session = await bridge_factory(
        [tcp_device("boiler", port)], read_token="reader", write_token=WRITER
    )
    reader = {"Authorization": "Bearer reader"}
    await eventually(lambda: all_good(session, "boiler", headers=AUTH))
    await put(session, "setpoint", 80.0, status=401, headers=reader)
    # the write token reads too
    await get_json(session, "api/v1/devices/boiler/points/setpoint", headers=AUTH)
    await put(session, "setpoint", 80.0)
    assert len(writes(sim)) == 1


async def test_with_no_write_token_configured_writes_are_disabled(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port)])
    for headers in ({}, AUTH):
        body = await put(session, "setpoint", 80.0, status=403, headers=headers)
        assert "BRIDGE_WRITE_TOKEN" in body["detail"]
    assert writes(sim) == []


async def test_a_point_not_writable_is_refused(
    boiler: tuple[ModbusSimulator, aiohttp.ClientSession],
) -> None:
    sim, session = boiler
    body = await put(session, "temperature", 30.0, status=403)
    assert "not writable" in body["detail"]
    assert writes(sim) == []


def test_an_input_register_cannot_even_be_configured_writable() -> None:
    point = {"id": "p", "table": "input", "address": 10, "type": "int16", "writable": True}
    with pytest.raises(ConfigError, match=r"devices\[0\]\.points\[0\].*read-only"):
        parse_config({"devices": [tcp_device("boiler", 5020, points=[point])]})
    point = {"id": "p", "address": "10001", "writable": True}  # a discrete input
    with pytest.raises(ConfigError, match="read-only"):
        parse_config({"devices": [tcp_device("boiler", 5020, points=[point])]})


async def test_the_token_may_come_from_a_file(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory, tmp_path: Path
) -> None:
    sim, port = simulator
    secret = tmp_path / "write_token"
    secret.write_text("agent:s3cret\n", encoding="utf-8")
    _, session = await bridge_factory([tcp_device("boiler", port)], write_token_file=str(secret))
    await eventually(lambda: all_good(session, "boiler", headers=AUTH))
    await put(session, "setpoint", 42.0, status=401, headers={"Authorization": "Bearer other"})
    assert (await put(session, "setpoint", 42.0))["value"] == 42.0
    assert holding(sim, 20, "float32", word_order="little") == 42.0


# --------------------------------------------------------------------------- what follows a write


async def test_a_write_is_published_to_stream_subscribers(
    boiler: tuple[ModbusSimulator, aiohttp.ClientSession],
) -> None:
    _, session = boiler
    async with session.ws_connect("api/v1/stream?point=boiler/setpoint", headers=AUTH) as ws:
        hello = await ws.receive_json(timeout=2)
        assert hello["type"] == "hello"
        snapshot = await ws.receive_json(timeout=2)
        assert [r["value"] for r in snapshot["readings"]] == [65.0]
        written = await put(session, "setpoint", 70.5)
        frame = await ws.receive_json(timeout=2)
    assert frame["type"] == "readings"
    assert frame["readings"] == [written]


async def test_every_write_leaves_one_audit_line(
    still_boiler: tuple[ModbusSimulator, aiohttp.ClientSession], caplog: pytest.LogCaptureFixture
) -> None:
    # still: a poll between the coil's fault and its write would make old= a bad reading
    sim, session = still_boiler
    caplog.set_level(logging.INFO, logger="bridge.audit")
    await put(session, "setpoint", 70.5)
    assert audit_lines(caplog) == [
        "write by=agent device=boiler point=setpoint value=70.5 old=65.0 new=70.5 result=ok"
    ]
    # in JSON logs, the record's fields are fields of the JSON object
    (record,) = [r for r in caplog.records if r.name == "bridge.audit"]
    logged = json.loads(JsonFormatter().format(record))
    assert {k: logged[k] for k in ("who", "device", "point", "value", "old", "new", "result")} == {
        "who": "agent", "device": "boiler", "point": "setpoint", "value": 70.5, "old": 65.0,
        "new": 70.5, "result": "ok",
    }  # fmt: skip
    assert logged["logger"] == "bridge.audit"
    caplog.clear()
    await put(session, "setpoint", 95.0, status=422)
    (line,) = audit_lines(caplog)
    assert line.startswith("write by=agent device=boiler point=setpoint value=95.0 old=70.5 ")
    assert "new=70.5 result=refused: 95.0 is above the maximum 90" in line
    caplog.clear()
    sim.exception_for("coil", 0, 0, 4)
    await put(session, "pump_on", False, status=502)
    (line,) = audit_lines(caplog)
    assert "by=agent device=boiler point=pump_on value=False old=True new=True" in line
    assert "result=failed: device refused: exception 4" in line
    caplog.clear()
    # refused before reaching the device: still one line each
    await put(session, "temperature", 1.0, status=403)
    async with session.put(
        "api/v1/devices/boiler/points/setpoint", json={"value": 1.0}
    ) as response:
        assert response.status == 401
    lines = audit_lines(caplog)
    assert len(lines) == 2
    assert lines[0].startswith("write by=agent path=/api/v1/devices/boiler/points/temperature")
    assert "result=refused 403: point boiler/temperature is not writable" in lines[0]
    assert lines[1].startswith("write by=- path=/api/v1/devices/boiler/points/setpoint")
    assert "result=refused 401" in lines[1]
    refused = [r for r in caplog.records if r.name == "bridge.audit"][1]
    assert json.loads(JsonFormatter().format(refused))["result"].startswith("refused 401")


async def test_writes_are_never_retried(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim, port = simulator
    # one poll, then none for a minute: nothing but the write and what the test asks for
    _, session = await bridge_factory(
        [tcp_device("boiler", port, interval=60.0)], write_token=WRITER
    )
    await eventually(lambda: all_good(session, "boiler", headers=AUTH))
    caplog.set_level(logging.INFO, logger="bridge.audit")
    sim.silent = True
    sim.clear_requests()
    body = await put(session, "setpoint", 70.0, status=504)
    assert "did not answer" in body["detail"]
    assert [(r.function, r.address) for r in sim.requests] == [(16, 20)]
    (line,) = audit_lines(caplog)
    assert "result=failed: " in line
    # a poll finds the device gone; a write then is not even tried
    async with session.post("api/v1/devices/boiler/poll", headers=AUTH) as response:
        assert response.status == 504
    sim.clear_requests()
    body = await put(session, "setpoint", 70.0, status=503)
    assert "offline" in body["detail"]
    assert sim.requests == []
    assert holding(sim, 20, "float32", word_order="little") == 65.0


async def test_a_write_waits_its_turn_in_the_link_queue_and_is_read_back_after(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    sim, port = simulator
    delay = 0.02
    _, session = await bridge_factory(
        [tcp_device("boiler", port, points=POINTS, interval=0.01, timeout=1.0)],
        write_token=WRITER,
    )
    await eventually(lambda: all_good(session, "boiler", headers=AUTH))
    blocks = {(r.function, r.address) for r in sim.requests}  # what one poll asks for
    per_poll = len(blocks)
    sim.delay = delay  # every request now takes that long: the link is always busy polling
    sim.clear_requests()
    await put(session, "setpoint", 70.5)
    log = list(sim.requests)
    (at,) = [i for i, r in enumerate(log) if r.function in WRITE_FUNCTIONS]
    # ahead of the polls that were due: only the poll under way (and, at worst, one that
    # began while the PUT was on its way) came before it
    assert at < 2 * per_poll
    # one request at a time: each came only after the previous one had been answered
    for before, after in itertools.pairwise(log):
        assert after.time - before.time >= delay * 0.9, (before, after)
    # the write came between polls, and the whole device was read right after it
    read_back = log[at + 1 : at + 1 + per_poll]
    assert len(read_back) == per_poll
    assert {(r.function, r.address) for r in read_back} == blocks


# --------------------------------------------------------------------------- serial-line writes


@pytest.fixture
async def thermostat() -> AsyncIterator[LineInstrument]:
    """A JSON instrument that takes ``T <temperature>`` and shows it (no acknowledgement)."""
    async with LineInstrument(format="json", setters={"T": "temperature"}) as instrument:
        yield instrument


async def test_a_serial_line_point_is_written_through_its_command_template(
    thermostat: LineInstrument, bridge_factory: BridgeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    _, session = await bridge_factory([line_device("oven", thermostat.path)], write_token=WRITER)
    await eventually(lambda: all_good(session, "oven", headers=AUTH))
    caplog.set_level(logging.INFO, logger="bridge.audit")
    reading = await put(session, "temperature", 180.25, device="oven")
    assert (reading["value"], reading["quality"], reading["unit"]) == (180.2, "good", "°C")
    assert b"T 180.2\r\n" in thermostat.commands
    assert audit_lines(caplog) == [
        "write by=agent device=oven point=temperature value=180.25 old=21.5 new=180.2 result=ok"
    ]
    await put(session, "temperature", 301, status=422, device="oven")
    await put(session, "temperature", True, status=422, device="oven")
    await put(session, "weight", 1.0, status=403, device="oven")
    assert [c for c in thermostat.commands if c != b"SI\r\n"] == [b"T 180.2\r\n"]


async def test_a_serial_line_write_with_an_acknowledgement_is_read_back(
    bridge_factory: BridgeFactory,
) -> None:
    # a SICS scale answers every line but its command with "ES": the reply is discarded
    async with LineInstrument(format="sics") as scale:
        entry = line_device(
            "oven", scale.path,
            parse={"regex": r"^S S\s+(?P<weight>-?\d+(\.\d+)?) g"},
            points=[{"id": "weight", "unit": "g", "type": "float", "writable": True,
                     "write": "TA {value:.2f} g\r\n"}],
        )  # fmt: skip
        _, session = await bridge_factory([entry], write_token=WRITER)
        await eventually(lambda: all_good(session, "oven", headers=AUTH))
        reading = await put(session, "weight", 12.5, device="oven")
        assert (reading["value"], reading["quality"]) == (123.45, "good")
        assert b"TA 12.50 g\r\n" in scale.commands
        assert json.dumps(reading)  # plain JSON
        await eventually(lambda: all_good(session, "oven", headers=AUTH))
        stats = await get_json(session, "api/v1/devices/oven", headers=AUTH)
        # the acknowledgement was taken by the write, not left for a poll to trip over
        assert stats["stats"]["driver"]["garbage"] == 0


def config_problems(point: dict[str, Any], **device: Any) -> list[str]:
    entry = line_device("oven", "/dev/null", points=[point], **device)
    with pytest.raises(ConfigError) as caught:
        parse_config({"devices": [entry]})
    return caught.value.problems


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ({"writable": True}, "devices[0].points[0]: serial-line points are written through"),
        ({"write": "T {value}\r\n"}, "devices[0].points[0]: write is a command template"),
        ({"writable": True, "write": "T\r\n"}, "devices[0].points[0].write: has no {value}"),
        ({"writable": True, "write": "T {}\r\n"}, "devices[0].points[0].write: may only use"),
        ({"writable": True, "write": "T {v}\r\n"}, "devices[0].points[0].write: may only use"),
        ({"writable": True, "write": "T {value.real}\r\n"}, "devices[0].points[0].write: may only"),
        ({"writable": True, "write": "T {value\r\n"}, "devices[0].points[0].write: is not a valid"),
        ({"writable": True, "write": "T {value}\\r\\n"}, "devices[0].points[0].write: 'T {value}"),
        ({"writable": True, "write": "T {value:d}\r\n"}, "devices[0].points[0]: write 'T {value:d}"),
        ({"type": "str", "writable": True, "write": "N {value:.1f}\r\n"}, "devices[0].points[0]: write"),
        ({"type": "bool", "min": 0}, "devices[0].points[0]: min and max apply to numbers"),
        ({"min": 5, "max": 1}, "devices[0].points[0]: min (5) is greater than max (1)"),
        ({"writable": True, "write": "T {value} °C\r\n"}, "devices[0].points[0].write: cannot be written in encoding 'ascii'"),
    ],
)  # fmt: skip
def test_a_serial_line_write_template_is_checked_when_the_file_is_read(
    point: dict[str, Any], expected: str
) -> None:
    found = config_problems({"id": "weight", **point})
    assert any(problem.startswith(expected) for problem in found), found


def test_serial_line_write_templates_of_every_type_are_accepted() -> None:
    points = [
        {"id": "weight", "writable": True, "write": "W {value:.2f}\r\n", "min": 0, "max": 5},
        {"id": "count", "type": "int", "writable": True, "write": "C {value:05d}\r\n"},
        {"id": "on", "type": "bool", "writable": True, "write": "ON {value:d}\r\n"},
        {"id": "name", "type": "str", "writable": True, "write": "N {value!r} {{x}}\r\n"},
    ]
    config = parse_config(
        {"devices": [line_device("oven", "/dev/null", points=points, parse={"json": True})]}
    )
    (device,) = config.devices
    assert isinstance(device, SerialLineDevice)
    assert SerialLineDriver().describe(device)[1:] == [
        "writes weight with 'W {value:.2f}\\r\\n'",
        "writes count with 'C {value:05d}\\r\\n'",
        "writes on with 'ON {value:d}\\r\\n'",
        "writes name with 'N {value!r} {{x}}\\r\\n'",
    ]


SERIAL_POINTS: list[dict[str, Any]] = [
    {"id": "level", "writable": True, "write": "L {value}\r\n", "min": -5, "max": 95.5},
    {"id": "count", "type": "int", "writable": True, "write": "C {value}\r\n"},
    {"id": "tenths", "type": "int", "scale": 0.1, "writable": True, "write": "T {value}\r\n"},
    {"id": "kelvin", "offset": -273.15, "writable": True, "write": "K {value:.2f}\r\n"},
    {"id": "deci", "scale": 0.1, "writable": True, "write": "D {value}\r\n"},
    {"id": "on", "type": "bool", "writable": True, "write": "ON {value:d}\r\n"},
    {"id": "name", "type": "str", "writable": True, "write": "N {value}\r\n"},
    {"id": "shown", "type": "str"},
]


@pytest.mark.parametrize(
    ("point", "value", "command"),
    [
        ("level", 12.5, b"L 12.5\r\n"),
        ("level", 12, b"L 12.0\r\n"),
        ("level", 95.5, b"L 95.5\r\n"),
        ("count", 7, b"C 7\r\n"),
        ("count", 7.0, b"C 7\r\n"),
        ("count", 10**30, b"C " + str(10**30).encode() + b"\r\n"),
        ("tenths", 12.3, b"T 123\r\n"),
        ("kelvin", 25, b"K 298.15\r\n"),
        ("deci", 12.3, b"D 123.0\r\n"),
        ("on", True, b"ON 1\r\n"),
        ("on", False, b"ON 0\r\n"),
        ("name", "Mixer 2", b"N Mixer 2\r\n"),
    ],
)
def test_a_serial_line_value_becomes_its_command(point: str, value: Any, command: bytes) -> None:
    device = SerialLineDevice.model_validate(
        line_device("oven", "/dev/null", points=SERIAL_POINTS, parse={"json": True})
    )
    SerialLineDriver().check_write(device, point, value)
    assert write_command(device, point, value) == command


@pytest.mark.parametrize(
    ("point", "value", "says"),
    [
        ("level", True, "takes a number"),
        ("level", "12", "takes a number"),
        ("level", 95.6, "above the maximum 95.5"),
        ("level", -5.5, "below the minimum -5"),
        ("level", float("nan"), "finite"),
        ("level", 10**400, "above the maximum"),
        ("count", 2.5, "whole number"),
        ("count", False, "takes a number"),
        ("deci", 1e308, "out of range"),
        ("on", 1, "true or false"),
        ("on", "true", "true or false"),
        ("name", 5, "takes a string"),
        ("name", "x\r\nRESET", "control characters"),
        ("name", "x\x00", "control characters"),
        ("name", "Wärme", "encoding 'ascii'"),
        ("shown", "x", "no write command"),
        ("nope", 1, "no point 'nope'"),
    ],
)
def test_a_serial_line_value_the_point_cannot_take_is_refused(
    point: str, value: Any, says: str
) -> None:
    device = SerialLineDevice.model_validate(
        line_device("oven", "/dev/null", points=SERIAL_POINTS, parse={"json": True})
    )
    with pytest.raises(BadValue, match=says):
        SerialLineDriver().check_write(device, point, value)


async def test_a_serial_line_write_in_stream_mode_is_sent_without_waiting() -> None:
    async with LineInstrument(mode="stream", format="json", stream_interval=0.05) as sim:
        entry = line_device("oven", sim.path, mode="stream", command=None, timeout=5.0)
        device = SerialLineDevice.model_validate(entry)
        link = SerialLineDriver().open_link("k", [device])
        await link.open()
        try:
            started = asyncio.get_running_loop().time()
            await link.write(device, "temperature", 40)
            assert asyncio.get_running_loop().time() - started < 1.0  # not the 5 s timeout
            await eventually(lambda: b"T 40.0\r\n" in sim.commands)
            assert (await link.read(device))["weight"] == 123.45
        finally:
            await link.close()
