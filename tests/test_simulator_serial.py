"""The serial simulators (Modbus RTU bus, line-protocol instrument) over real ptys.

Clients are pyserial-asyncio-fast streams, plain pyserial in a thread, and pymodbus's
serial client as an independent third party; frames are written out by hand with their
CRCs. Silence is shown without waiting where the bus allows it: answers come in order,
so when a request that must go unanswered is followed by one that must be answered, the
first bytes back belong to the second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import serial
import serial_asyncio_fast
from conftest import eventually
from pymodbus.client import AsyncModbusSerialClient
from test_cli_lifecycle import BRIDGE, Child, assert_clean_exit, run_cli

from bridge.cli import main
from simulators.cli import simulate
from simulators.modbus import LoggedRequest, ModbusDeviceState, ModbusSimulator
from simulators.modbus.profile import load_profile
from simulators.modbus.rtu import RTU_DEMO_PROFILE, ModbusRtuServer
from simulators.modbus.rtu_frame import crc16, rtu_frame
from simulators.pty_port import PtyPort
from simulators.serial_line import LineInstrument
from simulators.waveforms import Ramp

READ = 2.0  # seconds an expected answer may take on a loaded machine
LATE = 2.0  # loose upper bound for timed answers


def hexb(text: str) -> bytes:
    return bytes.fromhex(text)


class Client:
    """A host's end of a simulated serial port (pyserial-asyncio-fast streams)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, path: str, baudrate: int = 19200) -> Client:
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=path, baudrate=baudrate
        )
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read(self, count: int, within: float = READ) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(count), within)

    async def line(self, eol: bytes = b"\r\n", within: float = READ) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(eol), within)

    async def close(self) -> None:
        self.writer.close()
        # a port that vanished under the client reports why once more on closing
        with contextlib.suppress(serial.SerialException, OSError):
            await self.writer.wait_closed()


# --------------------------------------------------------------------------- RTU


@pytest.fixture
def sim() -> ModbusSimulator:
    one, two = ModbusDeviceState("one"), ModbusDeviceState("two")
    one.set_registers("holding", 0, [0x1234])
    two.set_value("input", 0, "uint32", 123456)
    two.set_bits("coil", 0, [True, False, True])
    return ModbusSimulator({1: one, 2: two})


@pytest.fixture
async def rtu(sim: ModbusSimulator) -> AsyncIterator[ModbusRtuServer]:
    async with ModbusRtuServer(sim) as server:
        yield server


@pytest.fixture
async def bus(rtu: ModbusRtuServer) -> AsyncIterator[Client]:
    client = await Client.open(rtu.path)
    yield client
    await client.close()


def test_crc16_known_vectors() -> None:
    assert crc16(b"123456789") == 0x4B37  # the CRC-16/MODBUS check value
    assert rtu_frame(1, hexb("0300000001")) == hexb("010300000001840a")
    assert crc16(hexb("010300000001840a")) == 0  # a frame with its CRC checks to 0


async def test_reads_two_units_on_one_bus(
    rtu: ModbusRtuServer, bus: Client, sim: ModbusSimulator
) -> None:
    bus.send(hexb("01 03 0000 0001 840a"))
    assert await bus.read(7) == hexb("01 03 02 1234 b533")
    bus.send(hexb("02 04 0000 0002 71f8"))
    assert await bus.read(9) == hexb("02 04 04 0001e240 d014")
    bus.send(hexb("02 01 0000 0003 7c38"))
    assert await bus.read(6) == hexb("02 01 01 05 91cf")
    assert [(r.unit, r.function, r.address, r.count) for r in sim.requests] == [
        (1, 3, 0, 1),
        (2, 4, 0, 2),
        (2, 1, 0, 3),
    ]
    assert all(isinstance(r, LoggedRequest) for r in sim.requests)
    assert rtu.requests_answered == 3
    assert rtu.crc_errors == 0


async def test_units_have_their_own_tables(bus: Client) -> None:
    bus.send(hexb("02 03 0000 0001 8439"))  # unit 2's holding 0 is 0, unit 1's is 0x1234
    assert await bus.read(7) == hexb("02 03 02 0000 fc44")


async def test_writes_are_framed_by_length(bus: Client, sim: ModbusSimulator) -> None:
    single = hexb("01 06 0005 1234 94bc")
    bus.send(single)
    assert await bus.read(8) == single  # the answer echoes the request
    bus.send(hexb("01 10 000a 0002 04 0001 0002 a3d1"))
    assert await bus.read(8) == hexb("01 10 000a 0002 61ca")
    bus.send(hexb("01 0f 0000 0003 01 05 4f54"))
    assert await bus.read(8) == hexb("01 0f 0000 0003 15ca")
    assert sim.units[1].get_registers("holding", 5) == [0x1234]
    assert sim.units[1].get_registers("holding", 10, 2) == [1, 2]
    assert sim.units[1].get_bits("coil", 0, 3) == [True, False, True]


async def test_a_request_arriving_in_pieces_is_answered(bus: Client) -> None:
    request = hexb("01 10 000a 0002 04 0001 0002 a3d1")
    for piece in (request[:1], request[1:6], request[6:9], request[9:]):
        bus.send(piece)
        await bus.writer.drain()
    assert await bus.read(8) == hexb("01 10 000a 0002 61ca")


async def test_exceptions_are_framed(bus: Client, sim: ModbusSimulator) -> None:
    sim.units[1].unreadable.append(("holding", 100, 100))
    bus.send(hexb("01 03 0064 0001 c5d5"))
    assert await bus.read(5) == hexb("01 83 02 c0f1")
    # a function this server cannot size is found by its CRC, and refused
    bus.send(hexb("01 2b 0e 01 00 7077"))
    assert await bus.read(5) == hexb("01 ab 01 9ef0")


async def test_an_absent_unit_is_silent(bus: Client, sim: ModbusSimulator) -> None:
    absent = rtu_frame(9, hexb("0300000001"))
    bus.send(absent + hexb("01 03 0000 0001 840a"))
    assert await bus.read(7) == hexb("01 03 02 1234 b533")  # the first answer is unit 1's
    assert [r.unit for r in sim.requests] == [9, 1]


async def test_bad_crc_requests_are_ignored_and_counted(
    rtu: ModbusRtuServer, bus: Client, sim: ModbusSimulator
) -> None:
    bus.send(hexb("01 06 0005 1234 0000"))  # a write with a bad CRC must not happen
    bus.send(hexb("01 03 0000 0001 840a"))
    assert await bus.read(7) == hexb("01 03 02 1234 b533")
    assert rtu.crc_errors == 1
    assert sim.units[1].get_registers("holding", 5) == [0]
    assert [(r.unit, r.function) for r in sim.requests] == [(1, 3)]


async def test_resynchronises_after_garbage(rtu: ModbusRtuServer, bus: Client) -> None:
    # 0x10 after the first byte reads as "write multiple" with a byte count from the
    # garbage: the valid request behind it is found without waiting for more bytes
    bus.send(hexb("ff 10 00 00 00 00 f0") + hexb("01 03 0000 0001 840a"))
    assert await bus.read(7) == hexb("01 03 02 1234 b533")
    bus.send(hexb("00 ff fe") + hexb("02 03 0000 0001 8439"))
    assert await bus.read(7) == hexb("02 03 02 0000 fc44")
    assert rtu.crc_errors == 2  # one per run of garbage


async def test_broadcast_writes_every_unit_and_answers_nothing(
    bus: Client, sim: ModbusSimulator
) -> None:
    bus.send(hexb("00 06 0007 1111 f586"))
    bus.send(hexb("02 03 0007 0001") + crc16(hexb("02 03 0007 0001")).to_bytes(2, "little"))
    assert await bus.read(7) == hexb("02 03 02 1111 3018")  # the first answer is the read's
    assert sim.units[1].get_registers("holding", 7) == [0x1111]
    assert [(r.unit, r.function, r.address) for r in sim.requests] == [(0, 6, 7), (2, 3, 7)]


async def test_a_third_party_client_reads_both_units(rtu: ModbusRtuServer) -> None:
    client = AsyncModbusSerialClient(rtu.path, baudrate=19200, timeout=2, retries=0)
    try:
        assert await client.connect()
        one = await client.read_holding_registers(0, count=1, device_id=1)
        two = await client.read_input_registers(0, count=2, device_id=2)
        coils = await client.read_coils(0, count=3, device_id=2)
    finally:
        client.close()
    assert one.registers == [0x1234]
    assert struct.unpack(">I", struct.pack(">2H", *two.registers)) == (123456,)
    assert coils.bits[:3] == [True, False, True]


# ----------------------------------------------------------------- RTU fault switches

READ_ONE = hexb("01 03 0000 0001 840a")
ANSWER_ONE = hexb("01 03 02 1234 b533")


async def test_bad_crc_answers(rtu: ModbusRtuServer, bus: Client) -> None:
    rtu.bad_crc = True
    bus.send(READ_ONE)
    answer = await bus.read(7)
    assert answer[:5] == ANSWER_ONE[:5]
    assert crc16(answer) != 0
    rtu.bad_crc = False
    bus.send(READ_ONE)
    assert await bus.read(7) == ANSWER_ONE


async def test_wrong_unit_answers(rtu: ModbusRtuServer, bus: Client) -> None:
    rtu.wrong_unit = True
    bus.send(READ_ONE)
    answer = await bus.read(7)
    assert answer[0] == 2
    assert answer[1:5] == ANSWER_ONE[1:5]
    assert crc16(answer) == 0  # well formed, just from someone else


async def test_stray_bytes_before_each_answer(rtu: ModbusRtuServer, bus: Client) -> None:
    rtu.stray_bytes = b"\x00\xff"
    bus.send(READ_ONE)
    assert await bus.read(9) == b"\x00\xff" + ANSWER_ONE
    bus.send(READ_ONE)
    assert await bus.read(9) == b"\x00\xff" + ANSWER_ONE


async def test_truncated_answers(rtu: ModbusRtuServer, bus: Client) -> None:
    rtu.truncate = True
    bus.send(READ_ONE)
    await bus.writer.drain()
    await eventually(lambda: rtu.requests_answered == 1)
    rtu.truncate = False
    bus.send(READ_ONE)
    # the cut-short answer, then the next one whole: nothing else came between
    assert await bus.read(3 + 7) == ANSWER_ONE[:3] + ANSWER_ONE


async def test_garbage_instead_of_answers(bus: Client, sim: ModbusSimulator) -> None:
    sim.garbage = b"\xde\xad\xbe\xef"
    bus.send(READ_ONE)
    assert await bus.read(4) == b"\xde\xad\xbe\xef"


async def test_clear_faults(rtu: ModbusRtuServer, bus: Client, sim: ModbusSimulator) -> None:
    rtu.bad_crc = rtu.wrong_unit = rtu.truncate = True
    rtu.stray_bytes = b"\x00"
    sim.garbage = b"\xff"
    rtu.clear_faults()
    bus.send(READ_ONE)
    assert await bus.read(7) == ANSWER_ONE


async def test_silent_bus_then_resumes(
    rtu: ModbusRtuServer, bus: Client, sim: ModbusSimulator
) -> None:
    sim.silent = True
    bus.send(hexb("01 06 0005 1234 94bc"))
    await eventually(lambda: len(sim.requests) == 1)
    sim.silent = False
    bus.send(READ_ONE)
    assert await bus.read(7) == ANSWER_ONE  # no echo of the write came before it
    assert sim.units[1].get_registers("holding", 5) == [0]  # a silent slave did nothing
    assert rtu.requests_answered == 1


async def test_delay_holds_answers_back(bus: Client, sim: ModbusSimulator) -> None:
    sim.delay = 0.1
    began = time.perf_counter()
    bus.send(READ_ONE)
    assert await bus.read(7) == ANSWER_ONE
    assert 0.1 <= time.perf_counter() - began < 0.1 + LATE


@pytest.mark.parametrize(
    ("baudrate", "parity", "bits_per_char"), [(9600, "N", 10), (19200, "E", 11)]
)
async def test_wire_time_answers_no_sooner_than_a_real_line(
    sim: ModbusSimulator, baudrate: int, parity: str, bits_per_char: int
) -> None:
    request = hexb("01 03 0000 000a c5cd")  # 10 registers: a 25-byte answer
    char_time = bits_per_char / baudrate
    earliest = (len(request) + 3.5 + 25) * char_time  # 41.8 ms at 9600 8N1
    async with ModbusRtuServer(sim, baudrate=baudrate, parity=parity, wire_time=True) as rtu:
        assert rtu.char_time == pytest.approx(char_time)
        client = await Client.open(rtu.path, baudrate)
        try:
            for _ in range(2):
                began = time.perf_counter()
                client.send(request)
                answer = await client.read(25)
                took = time.perf_counter() - began
                assert answer[:3] == hexb("01 03 14")
                assert earliest <= took < earliest + LATE
        finally:
            await client.close()


async def test_wire_time_sends_queued_answers_one_after_another(sim: ModbusSimulator) -> None:
    request = hexb("01 03 0000 000a c5cd")
    char_time = 10 / 9600
    async with ModbusRtuServer(sim, baudrate=9600, wire_time=True) as rtu:
        client = await Client.open(rtu.path, 9600)
        try:
            began = time.perf_counter()
            client.send(request * 2)  # the second request is on the line after the first
            await client.read(2 * 25)
            took = time.perf_counter() - began
        finally:
            await client.close()
    # the second answer follows the first after the 3.5-character silence
    assert (8 + 3.5 + 25 + 3.5 + 25) * char_time <= took < LATE


# ----------------------------------------------------------------- unplug and replug


def serial_exchange(path: str, data: bytes, expect: int) -> bytes:
    with serial.Serial(path, 19200, timeout=READ) as port:
        port.write(data)
        return bytes(port.read(expect))


async def test_rtu_unplug_and_replug(sim: ModbusSimulator, tmp_path: Path) -> None:
    async with ModbusRtuServer(sim, link_dir=str(tmp_path), name="ttyUSB0") as rtu:
        path = rtu.path
        assert path == str(tmp_path / "ttyUSB0")
        assert (await asyncio.to_thread(os.path.realpath, path)).startswith("/dev/pts/")
        assert await asyncio.to_thread(serial_exchange, path, READ_ONE, 7) == ANSWER_ONE

        handle = serial.Serial(path, 19200, timeout=READ)
        try:
            rtu.unplug()
            assert not await asyncio.to_thread(os.path.lexists, path)
            with pytest.raises(serial.SerialException):
                await asyncio.to_thread(handle.read, 1)  # EOF on a vanished port
        finally:
            handle.close()
        with pytest.raises(serial.SerialException):
            serial.Serial(path, 19200)

        assert await rtu.replug() == path
        assert await asyncio.to_thread(serial_exchange, path, READ_ONE, 7) == ANSWER_ONE


async def test_pty_without_link_dir_gets_a_new_device_on_replug(sim: ModbusSimulator) -> None:
    async with ModbusRtuServer(sim) as rtu:
        first = rtu.path
        assert re.fullmatch(r"/dev/pts/\d+", first)
        rtu.unplug()
        second = await rtu.replug()
        assert rtu.path == second
        assert await asyncio.to_thread(serial_exchange, second, READ_ONE, 7) == ANSWER_ONE


async def test_pty_port_drops_what_nobody_hears() -> None:
    received: list[bytes] = []
    hangups: list[None] = []
    port = PtyPort(on_data=received.append, on_hangup=lambda: hangups.append(None))
    path = await port.open()
    try:
        port.write(b"nobody listens")
        assert port.dropped == len(b"nobody listens")

        host = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            with pytest.raises(BlockingIOError):
                os.read(host, 100)  # what was sent before the host opened is lost
            os.write(host, b"hello")
            await eventually(lambda: received == [b"hello"])
            port.write(b"left unread")
        finally:
            os.close(host)
        await eventually(lambda: hangups)

        host = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            port.write(b"fresh")
            # the departed host's unread bytes were flushed, as a UART driver does
            assert os.read(host, 100) == b"fresh"
        finally:
            os.close(host)
    finally:
        await port.close()
    assert not port.plugged


# --------------------------------------------------------------------------- profile


async def test_rtu_demo_profile() -> None:
    sim = load_profile(RTU_DEMO_PROFILE)
    assert set(sim.units) == {3, 4}
    async with ModbusRtuServer(sim) as rtu:
        client = AsyncModbusSerialClient(rtu.path, baudrate=19200, timeout=2, retries=0)
        try:
            assert await client.connect()
            a = await client.read_input_registers(0, count=2, device_id=3)
            b = await client.read_input_registers(0, count=2, device_id=4)
            total = await client.read_holding_registers(0, count=1, device_id=4)
        finally:
            client.close()
    (flow_a,) = struct.unpack(">I", struct.pack(">2H", *a.registers))
    (flow_b,) = struct.unpack(">I", struct.pack(">2H", *b.registers))
    assert 11845 <= flow_a <= 12845  # 12.345 ± 0.5 m3/h, in thousandths
    assert 7800 <= flow_b <= 8600
    assert total.registers[0] >= 1000


# --------------------------------------------------------------------------- line


@pytest.fixture
async def scale() -> AsyncIterator[LineInstrument]:
    async with LineInstrument() as instrument:
        yield instrument


@pytest.fixture
async def host(scale: LineInstrument) -> AsyncIterator[Client]:
    client = await Client.open(scale.path, 9600)
    yield client
    await client.close()


@pytest.mark.parametrize(
    ("format_", "expected"),
    [
        ("sics", b"S S     123.45 g\r\n"),
        ("json", b'{"weight": 123.45, "temperature": 21.5, "stable": true}\r\n'),
        ("csv", b"123.45,21.5,1\r\n"),
    ],
)
async def test_query_answers_in_each_format(format_: Any, expected: bytes) -> None:
    async with LineInstrument(format=format_) as instrument:
        client = await Client.open(instrument.path, 9600)
        try:
            client.send(b"SI\r\n")
            assert await client.line() == expected
            instrument.stable = False
            instrument.values["weight"] = -5.5
            client.send(b"SI\r\n")
            answer = await client.line()
        finally:
            await client.close()
    if format_ == "sics":
        assert answer == b"S D      -5.50 g\r\n"
    elif format_ == "json":
        assert json.loads(answer) == {"weight": -5.5, "temperature": 21.5, "stable": False}
    else:
        assert answer == b"-5.5,21.5,0\r\n"
    assert instrument.commands == [b"SI\r\n", b"SI\r\n"]
    assert instrument.lines_sent == 2


async def test_sics_answers_other_input_with_a_syntax_error(
    scale: LineInstrument, host: Client
) -> None:
    host.send(b"XYZ\r\n")
    assert await host.line() == b"ES\r\n"
    assert scale.commands == [b"XYZ\r\n"]


async def test_json_ignores_other_input() -> None:
    async with LineInstrument(format="json", command=b"READ\n", eol=b"\n") as instrument:
        client = await Client.open(instrument.path, 9600)
        try:
            client.send(b"HELLO\nREAD\n")
            answer = await client.line(b"\n")
        finally:
            await client.close()
    assert json.loads(answer)["weight"] == 123.45  # the first line answers READ
    assert instrument.commands == [b"HELLO\n", b"READ\n"]


async def test_stream_mode_sends_lines_by_itself() -> None:
    async with LineInstrument(mode="stream", format="csv", stream_interval=0.02) as instrument:
        client = await Client.open(instrument.path, 9600)
        try:
            lines = [await client.line() for _ in range(3)]
        finally:
            await client.close()
    assert lines == [b"123.45,21.5,1\r\n"] * 3
    assert instrument.commands == []


async def test_moving_weight_drifts_with_the_clock() -> None:
    now = [100.0]
    instrument = LineInstrument(clock=lambda: now[0])
    instrument.moving = True
    assert instrument.reading()["weight"] == 123.45
    now[0] += instrument.drift_period / 4  # a quarter period: the peak
    assert instrument.reading()["weight"] == pytest.approx(123.45 + instrument.drift_amplitude)
    assert instrument.line() == b"S S     123.95 g"


def test_a_waveform_moves_any_value_of_the_line_instrument() -> None:
    now = [100.0]
    instrument = LineInstrument(format="csv", clock=lambda: now[0])
    instrument.waves["temperature"] = Ramp(start=0.0, step=0.5)  # the one set of waveforms
    now[0] += 4
    assert instrument.reading()["temperature"] == pytest.approx(21.5 + 2.0)
    assert instrument.line() == b"123.45,23.5,1"


# ----------------------------------------------------------------- line fault switches


async def test_line_silent_ignores_commands_then_resumes(
    scale: LineInstrument, host: Client
) -> None:
    scale.silent = True
    host.send(b"SI\r\n")
    await eventually(lambda: len(scale.commands) == 1)
    scale.silent = False
    scale.values["weight"] = 1.0
    host.send(b"SI\r\n")
    assert await host.line() == b"S S       1.00 g\r\n"  # only the second was answered
    assert scale.lines_sent == 1


async def test_line_delay(scale: LineInstrument, host: Client) -> None:
    scale.delay = 0.1
    began = time.perf_counter()
    host.send(b"SI\r\n")
    assert await host.line() == b"S S     123.45 g\r\n"
    assert 0.1 <= time.perf_counter() - began < 0.1 + LATE


async def test_line_garbage_while_set(scale: LineInstrument, host: Client) -> None:
    scale.garbage = b"\x00\xfe?"
    host.send(b"SI\r\nSI\r\n")
    assert await host.read(6) == b"\x00\xfe?" * 2  # every answer, for as long as it is set
    scale.garbage = None
    host.send(b"SI\r\n")
    assert await host.line() == b"S S     123.45 g\r\n"


async def test_line_partial_then_whole(scale: LineInstrument, host: Client) -> None:
    scale.partial = True
    host.send(b"SI\r\n")
    await eventually(lambda: scale.lines_sent == 1)
    scale.partial = False
    host.send(b"SI\r\n")
    # half a line without its end, then the whole next one
    line = b"S S     123.45 g"
    assert await host.line() == line[:8] + line + b"\r\n"


async def test_line_overlong(scale: LineInstrument, host: Client) -> None:
    scale.overlong = 300
    host.send(b"SI\r\n")
    assert await host.line() == b"X" * 300 + b"\r\n"


async def test_line_stray_bytes(scale: LineInstrument, host: Client) -> None:
    scale.stray = b"\x11\x13"
    host.send(b"SI\r\n")
    assert await host.line() == b"\x11\x13S S     123.45 g\r\n"


async def test_line_unplug_and_replug(tmp_path: Path) -> None:
    async with LineInstrument(link_dir=str(tmp_path), name="ttyACM0") as instrument:
        path = instrument.path
        client = await Client.open(path, 9600)
        try:
            client.send(b"SI\r\n")
            assert await client.line() == b"S S     123.45 g\r\n"
            instrument.unplug()
            assert not await asyncio.to_thread(os.path.lexists, path)
            with pytest.raises((asyncio.IncompleteReadError, serial.SerialException, OSError)):
                await client.line()
        finally:
            await client.close()
        assert await instrument.replug() == path
        client = await Client.open(path, 9600)
        try:
            client.send(b"SI\r\n")
            assert await client.line() == b"S S     123.45 g\r\n"
        finally:
            await client.close()


async def test_an_answer_pending_at_unplug_is_lost(tmp_path: Path) -> None:
    async with LineInstrument(link_dir=str(tmp_path)) as instrument:
        client = await Client.open(instrument.path, 9600)
        try:
            instrument.delay = 0.1
            client.send(b"SI\r\n")
            await eventually(lambda: len(instrument.commands) == 1)
            instrument.unplug()
        finally:
            await client.close()
        await instrument.replug()
        instrument.clear_faults()
        instrument.values["weight"] = 2.0
        client = await Client.open(instrument.path, 9600)
        try:
            client.send(b"SI\r\n")
            assert await client.line() == b"S S       2.00 g\r\n"
        finally:
            await client.close()
    assert instrument.lines_sent == 1


# --------------------------------------------------------------------------- CLI

RTU_LINE = r"modbus-rtu simulator on (/dev/pts/\d+) \(units 3, 4\) at 19200 baud"
LINE_LINE = r"serial-line simulator \(query, json\) on (/dev/pts/\d+)"


def read_flow(path: str) -> int:
    """Unit 3's input registers 0-1 (uint32 flow) read with a hand-built frame."""
    answer = serial_exchange(path, rtu_frame(3, hexb("0400000002")), 9)
    assert crc16(answer) == 0, answer.hex()
    assert answer[:3] == hexb("03 04 04")
    value: int = struct.unpack(">I", answer[3:7])[0]
    return value


@pytest.mark.timeout(30)
def test_simulate_modbus_rtu_prints_a_pty_a_client_can_read(tmp_path: Path) -> None:
    with Child([*BRIDGE, "simulate", "modbus-rtu"], cwd=tmp_path) as simulator:
        path = simulator.expect(RTU_LINE).group(1)
        assert 11845 <= read_flow(path) <= 12845
        status = simulator.stop(signal.SIGINT)
    assert_clean_exit(status, simulator)


@pytest.mark.timeout(30)
def test_simulate_serial_line_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    command = [*BRIDGE, "simulate", "serial-line", "--format", "json"]
    with Child(command, cwd=tmp_path) as simulator:
        path = simulator.expect(LINE_LINE).group(1)
        with serial.Serial(path, 9600, timeout=READ) as port:
            port.write(b"SI\r\n")
            answer = port.readline()
        assert json.loads(answer) == {"weight": 123.45, "temperature": 21.5, "stable": True}
        status = simulator.stop(signal.SIGTERM)
    assert_clean_exit(status, simulator)


def test_simulate_with_a_bad_profile_exits_2(tmp_path: Path) -> None:
    result = run_cli(["simulate", "modbus-rtu", "--profile", "missing.yaml"], tmp_path)
    assert result.returncode == 2, result
    assert "missing.yaml: cannot read" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("serial-line", {"wire_time": True}, "--wire-time applies to modbus-rtu, not serial-line"),
        ("modbus-tcp", {"mode": "stream"}, "--mode applies to serial-line, not modbus-tcp"),
        ("serial-line", {"profile": "x.yaml"}, "--profile applies to modbus-tcp and modbus-rtu"),
        ("serial-line", {"interval": 0.0}, "--interval must be positive"),
        ("modbus-rtu", {"baudrate": 0}, "--baudrate must be positive"),
    ],
    ids=["wire-time-for-line", "mode-for-tcp", "profile-for-line", "zero-interval", "zero-baud"],
)
def test_simulate_options_that_do_not_apply_exit_2(
    kind: str, options: dict[str, Any], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = options.pop("profile", None)
    assert simulate(kind, "127.0.0.1", 5020, profile, **options) == 2
    assert message in capsys.readouterr().err


def test_simulate_choices_are_checked_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "serial-line", "--format", "xml"])
    assert exited.value.code == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err
