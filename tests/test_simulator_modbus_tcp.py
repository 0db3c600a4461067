"""The Modbus TCP simulator, checked with pymodbus's client as an independent third party
and with raw sockets for the framing."""

from __future__ import annotations

import ast
import asyncio
import math
import re
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import eventually
from pymodbus.client import AsyncModbusTcpClient

from simulators.modbus import (
    LoggedRequest,
    ModbusDeviceState,
    ModbusSimulator,
    decode_registers,
    encode_registers,
)
from simulators.modbus.profile import DEMO_PROFILE, ProfileError, load_profile, parse_profile
from simulators.modbus.tcp import ModbusTcpServer, run_tcp_simulator
from simulators.waveforms import Counter, Ramp, RandomWalk, Sine

NO_ANSWER = 0.2  # seconds to wait before deciding an answer is not coming


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> ModbusSimulator:
    return ModbusSimulator({1: ModbusDeviceState("one"), 2: ModbusDeviceState("two")}, clock=clock)


@pytest.fixture
async def server(sim: ModbusSimulator) -> AsyncIterator[ModbusTcpServer]:
    async with ModbusTcpServer(sim) as server:
        yield server


@pytest.fixture
async def client(server: ModbusTcpServer) -> AsyncIterator[AsyncModbusTcpClient]:
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, retries=0, reconnect_delay=0)
    assert await client.connect()
    yield client
    client.close()


async def raw_exchange(port: int, data: bytes, expect: int) -> bytes:
    """Send ``data`` on a fresh connection and read ``expect`` bytes back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(expect), 1.0)
    finally:
        writer.close()


def frame(transaction: int, unit: int, pdu: bytes, protocol: int = 0) -> bytes:
    return struct.pack(">HHHB", transaction, protocol, len(pdu) + 1, unit) + pdu


# --------------------------------------------------------------------------- typed values


@pytest.mark.parametrize(
    ("type_", "value", "byte_order", "word_order", "registers"),
    [
        ("float32", 1.5, "big", "big", [0x3FC0, 0x0000]),
        ("float32", 1.5, "big", "little", [0x0000, 0x3FC0]),
        ("float32", 1.5, "little", "big", [0xC03F, 0x0000]),
        ("float32", 1.5, "little", "little", [0x0000, 0xC03F]),
        ("int16", -2, "big", "big", [0xFFFE]),
        ("uint16", 0x1234, "little", "big", [0x3412]),
        ("int32", -2, "big", "big", [0xFFFF, 0xFFFE]),
        ("uint32", 0x12345678, "big", "little", [0x5678, 0x1234]),
        ("int64", -1, "big", "big", [0xFFFF] * 4),
        ("uint64", 0x0102030405060708, "big", "little", [0x0708, 0x0506, 0x0304, 0x0102]),
        ("float64", 1.0, "big", "big", [0x3FF0, 0, 0, 0]),
        ("float64", 1.0, "big", "little", [0, 0, 0, 0x3FF0]),
    ],
)
def test_typed_values_encode_to_known_registers(
    type_: str, value: float, byte_order: str, word_order: str, registers: list[int]
) -> None:
    encoded = encode_registers(
        type_,  # type: ignore[arg-type]
        value,
        byte_order=byte_order,  # type: ignore[arg-type]
        word_order=word_order,  # type: ignore[arg-type]
    )
    assert encoded == registers
    decoded = decode_registers(
        type_,  # type: ignore[arg-type]
        registers,
        byte_order=byte_order,  # type: ignore[arg-type]
        word_order=word_order,  # type: ignore[arg-type]
    )
    assert decoded == value


def test_strings_are_ascii_padded_with_nul() -> None:
    assert encode_registers("string", "ABC", length=3) == [0x4142, 0x4300, 0x0000]
    assert encode_registers("string", "ABC", length=2, byte_order="little") == [0x4241, 0x0043]
    assert decode_registers("string", [0x4142, 0x4300, 0x0000]) == "ABC"
    with pytest.raises(ValueError, match="longer"):
        encode_registers("string", "ABCDE", length=2)


@pytest.mark.parametrize(("type_", "value"), [("int16", 32768), ("uint16", -1), ("uint32", 1.5)])
def test_values_that_do_not_fit_are_refused(type_: str, value: float) -> None:
    with pytest.raises(ValueError, match=type_):
        ModbusDeviceState().set_value("holding", 0, type_, value)  # type: ignore[arg-type]


def test_values_past_the_end_of_a_table_are_refused() -> None:
    state = ModbusDeviceState()
    with pytest.raises(ValueError, match="outside"):
        state.set_value("holding", 65535, "float32", 1.0)
    assert len(state.holding) == 65536


# --------------------------------------------------------------------------- reads


async def test_reads_each_table(sim: ModbusSimulator, client: AsyncModbusTcpClient) -> None:
    state = sim.units[1]
    state.set_registers("holding", 5, [1, 2, 3])
    state.set_registers("input", 7, [0xBEEF])
    state.set_bits("coil", 3, [True, False, True])
    state.set_bits("discrete", 9, [True])

    holding = await client.read_holding_registers(5, count=3, device_id=1)
    assert holding.registers == [1, 2, 3]
    inputs = await client.read_input_registers(7, count=1, device_id=1)
    assert inputs.registers == [0xBEEF]
    coils = await client.read_coils(3, count=3, device_id=1)
    assert coils.bits[:3] == [True, False, True]
    discrete = await client.read_discrete_inputs(8, count=2, device_id=1)
    assert discrete.bits[:2] == [False, True]


async def test_bits_are_packed_lsb_first(sim: ModbusSimulator, server: ModbusTcpServer) -> None:
    sim.units[1].set_bits("coil", 0, [True, False, False, False, False, False, False, False, True])
    answer = await raw_exchange(server.port, frame(7, 1, b"\x01\x00\x00\x00\x0a"), 7 + 4)
    assert answer == frame(7, 1, b"\x01\x02\x01\x01")


async def test_units_have_their_own_tables(
    sim: ModbusSimulator, client: AsyncModbusTcpClient
) -> None:
    sim.units[1].set_registers("holding", 0, [11])
    sim.units[2].set_registers("holding", 0, [22])
    assert (await client.read_holding_registers(0, device_id=1)).registers == [11]
    assert (await client.read_holding_registers(0, device_id=2)).registers == [22]


async def test_typed_values_read_by_a_third_party_client(
    sim: ModbusSimulator, client: AsyncModbusTcpClient
) -> None:
    state = sim.units[1]
    state.set_value("holding", 0, "float32", 1.5)
    state.set_value("holding", 2, "float32", 1.5, word_order="little")
    state.set_value("holding", 4, "int32", -100000)
    state.set_value("holding", 6, "string", "BOILER-1", length=8)

    rr = await client.read_holding_registers(0, count=14, device_id=1)
    assert rr.registers[0:2] == [0x3FC0, 0x0000]
    assert rr.registers[2:4] == [0x0000, 0x3FC0]
    dt = client.DATATYPE
    assert client.convert_from_registers(rr.registers[4:6], dt.INT32) == -100000
    text = client.convert_from_registers(rr.registers[6:14], dt.STRING)
    assert isinstance(text, str)
    assert text.rstrip("\0") == "BOILER-1"


# --------------------------------------------------------------------------- writes


async def test_writes_change_state(sim: ModbusSimulator, client: AsyncModbusTcpClient) -> None:
    state = sim.units[1]
    assert not (await client.write_coil(4, True, device_id=1)).isError()
    assert not (await client.write_register(8, 0xABCD, device_id=1)).isError()
    assert not (await client.write_coils(10, [True, False, True], device_id=1)).isError()
    registers = encode_registers("float32", 65.5, word_order="little")
    assert not (await client.write_registers(20, registers, device_id=1)).isError()

    assert state.get_bits("coil", 4) == [True]
    assert state.get_registers("holding", 8) == [0xABCD]
    assert state.get_bits("coil", 10, 3) == [True, False, True]
    assert state.get_value("holding", 20, "float32", word_order="little") == 65.5
    assert not (await client.write_coil(4, False, device_id=1)).isError()
    assert state.get_bits("coil", 4) == [False]


async def test_write_answers_follow_the_spec(server: ModbusTcpServer) -> None:
    single = b"\x06\x00\x08\x12\x34"
    assert await raw_exchange(server.port, frame(1, 1, single), 12) == frame(1, 1, single)
    multiple = b"\x0f\x00\x0a\x00\x03\x01\x05"
    answer = await raw_exchange(server.port, frame(2, 1, multiple), 12)
    assert answer == frame(2, 1, b"\x0f\x00\x0a\x00\x03")


# --------------------------------------------------------------------------- exceptions


async def test_unreadable_range_answers_illegal_address(
    sim: ModbusSimulator, client: AsyncModbusTcpClient
) -> None:
    sim.units[1].unreadable.append(("holding", 100, 109))
    sim.unreadable.append(("input", 5, 5))

    touching = await client.read_holding_registers(95, count=6, device_id=1)
    assert touching.isError()
    assert touching.exception_code == 2
    assert (await client.read_input_registers(0, count=10, device_id=2)).exception_code == 2
    assert not (await client.read_holding_registers(90, count=10, device_id=1)).isError()
    # writes are not reads: the range only refuses reads
    assert not (await client.write_register(100, 1, device_id=1)).isError()


async def test_past_the_end_answers_illegal_address(client: AsyncModbusTcpClient) -> None:
    rr = await client.read_holding_registers(65530, count=7, device_id=1)
    assert rr.exception_code == 2
    assert not (await client.read_holding_registers(65530, count=6, device_id=1)).isError()


@pytest.mark.parametrize(
    "pdu",
    [
        b"\x03\x00\x00\x00\x7e",  # 126 registers
        b"\x03\x00\x00\x00\x00",  # none
        b"\x01\x00\x00\x07\xd1",  # 2001 coils
        b"\x05\x00\x00\x12\x34",  # a coil is 0xFF00 or 0x0000
        b"\x10\x00\x00\x00\x02\x02\x00\x01",  # byte count says one register, count says two
        b"\x03\x00\x00",  # too short
    ],
)
async def test_bad_values_answer_illegal_value(server: ModbusTcpServer, pdu: bytes) -> None:
    answer = await raw_exchange(server.port, frame(3, 1, pdu), 9)
    assert answer == frame(3, 1, bytes([pdu[0] | 0x80, 3]))


async def test_unknown_function_answers_illegal_function(server: ModbusTcpServer) -> None:
    answer = await raw_exchange(server.port, frame(4, 1, b"\x2b\x0e\x01\x00"), 9)
    assert answer == frame(4, 1, b"\xab\x01")


async def test_configured_exception_code(
    sim: ModbusSimulator, client: AsyncModbusTcpClient
) -> None:
    sim.exception_for("holding", 10, 19, 6, unit=1)
    assert (await client.read_holding_registers(15, count=1, device_id=1)).exception_code == 6
    assert (await client.write_register(10, 1, device_id=1)).exception_code == 6
    assert not (await client.read_holding_registers(15, count=1, device_id=2)).isError()
    sim.clear_faults()
    assert not (await client.read_holding_registers(15, count=1, device_id=1)).isError()


# --------------------------------------------------------------------------- silence, delay


async def test_a_missing_unit_is_mute(sim: ModbusSimulator, client: AsyncModbusTcpClient) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.read_holding_registers(0, device_id=9), NO_ANSWER)
    assert sim.requests[-1].unit == 9


async def test_silent_answers_nothing_then_resumes(
    sim: ModbusSimulator, server: ModbusTcpServer
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        sim.silent = True
        writer.write(frame(1, 1, b"\x03\x00\x00\x00\x01"))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(1), NO_ANSWER)
        sim.silent = False
        writer.write(frame(2, 1, b"\x03\x00\x00\x00\x01"))
        answer = await asyncio.wait_for(reader.readexactly(11), 1.0)
        assert answer == frame(2, 1, b"\x03\x02\x00\x00")
    finally:
        writer.close()


async def test_lost_replies_are_the_next_answers_to_a_range_then_it_answers_again(
    sim: ModbusSimulator, server: ModbusTcpServer
) -> None:
    sim.lose_replies_for("holding", 10, 19, 2, unit=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(frame(1, 1, b"\x06\x00\x0c\x00\x07"))  # write 7 to 12: carried out
        writer.write(frame(2, 2, b"\x03\x00\x0c\x00\x01"))  # another unit: answered
        assert await asyncio.wait_for(reader.readexactly(11), 1.0) == frame(
            2, 2, b"\x03\x02\x00\x00"
        )
        writer.write(frame(3, 1, b"\x03\x00\x00\x00\x0a"))  # 0..9: outside the range
        assert (await asyncio.wait_for(reader.readexactly(29), 1.0))[:2] == b"\x00\x03"
        writer.write(frame(4, 1, b"\x03\x00\x13\x00\x02"))  # 19..20: the second lost
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(1), NO_ANSWER)
        writer.write(frame(5, 1, b"\x03\x00\x0c\x00\x01"))
        answer = await asyncio.wait_for(reader.readexactly(11), 1.0)
        assert answer == frame(5, 1, b"\x03\x02\x00\x07")  # the lost write had been done
    finally:
        writer.close()


async def test_delay_holds_the_answer_back(
    sim: ModbusSimulator, client: AsyncModbusTcpClient
) -> None:
    sim.delay = 0.05
    pending = asyncio.ensure_future(client.read_holding_registers(0, device_id=1))
    await eventually(lambda: len(sim.requests) == 1)
    assert not pending.done()
    rr = await asyncio.wait_for(pending, 1.0)
    assert rr.registers == [0]


async def test_delay_on_one_connection_does_not_block_another(
    sim: ModbusSimulator, server: ModbusTcpServer
) -> None:
    sim.delay = 0.5
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        slow_writer.write(frame(1, 1, b"\x03\x00\x00\x00\x01"))
        await eventually(lambda: len(sim.requests) == 1)
        sim.delay = 0
        answer = await raw_exchange(server.port, frame(2, 1, b"\x03\x00\x00\x00\x01"), 11)
        assert answer == frame(2, 1, b"\x03\x02\x00\x00")
        assert not slow_reader.at_eof()
    finally:
        slow_writer.close()


async def test_garbage_replaces_the_answer(sim: ModbusSimulator, server: ModbusTcpServer) -> None:
    sim.garbage = b"\xde\xad\xbe\xef"
    assert await raw_exchange(server.port, frame(1, 1, b"\x03\x00\x00\x00\x01"), 4) == (
        b"\xde\xad\xbe\xef"
    )


# --------------------------------------------------------------------------- connections


async def test_drop_connections_closes_the_client(
    sim: ModbusSimulator, server: ModbusTcpServer, client: AsyncModbusTcpClient
) -> None:
    await eventually(lambda: server.connections == 1)
    sim.drop_connections()
    await eventually(lambda: not client.connected)
    assert server.connections == 0
    # the server still listens: a new connection is served
    answer = await raw_exchange(server.port, frame(1, 1, b"\x03\x00\x00\x00\x01"), 11)
    assert answer == frame(1, 1, b"\x03\x02\x00\x00")


async def test_pipelined_requests_in_one_write(server: ModbusTcpServer) -> None:
    requests = b"".join(frame(t, 1, b"\x03\x00\x00\x00\x01") for t in (10, 11, 12))
    answers = await raw_exchange(server.port, requests, 3 * 11)
    assert answers == b"".join(frame(t, 1, b"\x03\x02\x00\x00") for t in (10, 11, 12))


async def test_a_frame_split_across_writes(server: ModbusTcpServer) -> None:
    data = frame(5, 1, b"\x03\x00\x00\x00\x01")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for piece in (data[:3], data[3:8], data[8:]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0)
        answer = await asyncio.wait_for(reader.readexactly(11), 1.0)
        assert answer == frame(5, 1, b"\x03\x02\x00\x00")
    finally:
        writer.close()


@pytest.mark.parametrize(
    "header",
    [
        struct.pack(">HHHB", 1, 7, 6, 1),  # protocol id is not Modbus
        struct.pack(">HHHB", 1, 0, 1, 1),  # no room for a function code
        struct.pack(">HHHB", 1, 0, 300, 1),  # longer than any PDU
    ],
)
async def test_a_malformed_header_closes_the_connection(
    server: ModbusTcpServer, header: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(header + b"\x03\x00\x00\x00\x01")
        assert await asyncio.wait_for(reader.read(), 1.0) == b""
    finally:
        writer.close()


async def test_stop_closes_open_connections(sim: ModbusSimulator) -> None:
    server = ModbusTcpServer(sim)
    port = await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await eventually(lambda: server.connections == 1)
    await server.stop()
    assert await asyncio.wait_for(reader.read(), 1.0) == b""
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


# --------------------------------------------------------------------------- request log


async def test_request_log(sim: ModbusSimulator, client: AsyncModbusTcpClient) -> None:
    await client.read_holding_registers(3, count=4, device_id=1)
    await client.read_coils(0, count=16, device_id=2)
    await client.write_register(9, 1, device_id=1)
    await client.write_registers(30, [1, 2], device_id=1)

    assert [(r.unit, r.function, r.address, r.count) for r in sim.requests] == [
        (1, 3, 3, 4),
        (2, 1, 0, 16),
        (1, 6, 9, 1),
        (1, 16, 30, 2),
    ]
    assert all(isinstance(r, LoggedRequest) and r.time == 1000.0 for r in sim.requests)
    sim.clear_requests()
    assert sim.requests == []


# --------------------------------------------------------------------------- moving values


async def test_sine_moves_with_the_clock(
    sim: ModbusSimulator, clock: FakeClock, client: AsyncModbusTcpClient
) -> None:
    sim.attach(1, "holding", 0, "float32", Sine(amplitude=5, period=30, offset=60))

    async def read() -> float:
        rr = await client.read_holding_registers(0, count=2, device_id=1)
        value = decode_registers("float32", rr.registers)
        assert isinstance(value, float)
        return value

    assert await read() == pytest.approx(60.0)
    clock.now += 7.5  # a quarter period: the peak
    assert await read() == pytest.approx(65.0)
    clock.now += 15.0
    assert await read() == pytest.approx(55.0)


def test_generators() -> None:
    assert Ramp(start=0, step=2, wrap=10).value(3) == 6
    assert Ramp(start=0, step=2, wrap=10).value(6) == 2
    assert Ramp(start=10, step=-1, wrap=0).value(3) == 7
    assert Counter(start=5, increment=1).value(2.9) == 7
    walk = RandomWalk(start=150, min=145, max=155, step=2, seed=1)
    values = [walk.value(t) for t in range(100)]
    assert values[0] == 150
    assert all(145 <= v <= 155 for v in values)
    assert len(set(values)) > 10
    assert walk.value(99.5) == values[-1]  # moves with time, not with reads
    assert math.isclose(Sine(amplitude=1, period=4).value(1), 1.0)


def test_generated_integers_wrap_and_bits_blink(sim: ModbusSimulator, clock: FakeClock) -> None:
    state = sim.units[1]
    sim.attach(1, "holding", 0, "uint16", Counter(start=65534, increment=1))
    sim.attach(1, "coil", 0, "bool", Counter(increment=1))
    assert state.get_registers("holding", 0) == [65534]
    assert state.get_bits("coil", 0) == [False]
    clock.now += 2
    sim.tick()
    assert state.get_registers("holding", 0) == [0]
    clock.now += 1
    sim.tick()
    assert state.get_bits("coil", 0) == [True]


# --------------------------------------------------------------------------- profiles


async def test_demo_profile(clock: FakeClock) -> None:
    sim = load_profile(DEMO_PROFILE, clock=clock)
    assert set(sim.units) == {1}
    async with ModbusTcpServer(sim) as server:
        client = AsyncModbusTcpClient("127.0.0.1", port=server.port, retries=0, reconnect_delay=0)
        assert await client.connect()
        try:
            holding = (await client.read_holding_registers(0, count=60, device_id=1)).registers
            assert decode_registers("float32", holding[0:2]) == pytest.approx(60.0)
            setpoint = decode_registers("float32", holding[20:22], word_order="little")
            assert setpoint == 65.0
            assert holding[30] & (1 << 3)
            assert decode_registers("string", holding[40:48]) == "BOILER-1"
            assert decode_registers("uint32", holding[50:52]) == 0
            pressure = (await client.read_input_registers(10, device_id=1)).registers[0]
            assert 130 <= pressure <= 170
            assert (await client.read_coils(0, device_id=1)).bits[0] is True
            assert (await client.read_holding_registers(100, device_id=1)).exception_code == 2

            clock.now += 42
            holding = (await client.read_holding_registers(50, count=2, device_id=1)).registers
            assert decode_registers("uint32", holding) == 42
        finally:
            client.close()


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"units": {1: {"values": [{"table": "holding", "address": 0, "type": "float"}]}}},
         r"units\.1\.values\[0\]\.type"),
        ({"units": {1: {"values": [{"table": "holding", "address": 0}]}}},
         "exactly one of value and generator"),
        ({"units": {1: {"values": [{"table": "holding", "address": 0, "value": 70000}]}}},
         r"units\.1\.values\[0\]: 70000 is out of range"),
        ({"units": {1: {"values": [{"table": "coil", "address": 0, "type": "int16", "value": 1}]}}},
         "must be bool"),
        ({"units": {1: {"values": [{"table": "holding", "address": 0, "colour": 1}]}}},
         "unknown keys colour"),
        ({"units": {1: {"values": [{"table": "holding", "address": 0, "type": "string",
                                    "value": "x"}]}}},
         "needs length"),
        ({"units": {1: {"values": [{"table": "holding", "address": 0,
                                    "generator": {"kind": "sine", "amplitude": 1}}]}}},
         r"generator\.period: is required"),
        ({"units": {1: {"values": [{"table": "holding", "address": 0,
                                    "generator": {"kind": "sine", "period": 1, "phase": 2}}]}}},
         r"generator\.phase: unknown"),
        ({"units": {300: {}}}, r"units\.300"),
        ({"units": {1: {"unreadable": [{"table": "holding", "start": 5, "end": 1}]}}},
         r"unreadable\[0\]\.end"),
    ],
)  # fmt: skip
def test_profile_errors_name_the_place(profile: object, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(profile, source="p.yaml")


def test_profile_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("units: [1, 2\n", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"bad\.yaml: not valid YAML"):
        load_profile(bad)


async def test_run_tcp_simulator_serves_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    task = asyncio.create_task(run_tcp_simulator("127.0.0.1", 0, None))
    printed: list[str] = []

    def said_where() -> bool:
        printed.append(capsys.readouterr().out)
        return "\n" in "".join(printed) or task.done()

    try:
        await eventually(said_where)
        line = "".join(printed)
        found = re.fullmatch(
            r"modbus-tcp simulator listening on 127\.0\.0\.1:(\d+) \(units 1\)\n", line
        )
        assert found, line
        name = await raw_exchange(int(found[1]), frame(1, 1, b"\x03\x00\x28\x00\x04"), 9 + 8)
        assert name[9:] == b"BOILER-1"
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_simulators_do_not_import_the_bridge_or_drivers() -> None:
    """Principle 7: a decoding bug must not cancel itself out on both sides."""
    package = Path(__file__).parent.parent / "simulators"
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in {"bridge", "drivers"}, f"{source.name}: {name}"
