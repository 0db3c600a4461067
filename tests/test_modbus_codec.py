"""Decoding and encoding of Modbus point values, against known byte vectors and round trips."""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import BadValue, PointFailure, Value
from drivers.modbus.blocks import BlockDecoder, decode_block
from drivers.modbus.codec import (
    decode_bits,
    decode_registers,
    encode_bit,
    encode_value,
)
from drivers.modbus.config import ModbusPoint
from drivers.modbus.planner import ReadBlock, plan_reads

ORDERS = [(b, w) for b in ("big", "little") for w in ("big", "little")]
INTEGER_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
WIDTHS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4}
WIDTHS |= {"float32": 2, "float64": 4}


def point(type: str = "uint16", address: int = 0, **fields: Any) -> ModbusPoint:
    entry = {"id": "p", "table": "holding", "address": address, "type": type, **fields}
    return ModbusPoint.model_validate(entry)


def registers_of(p: ModbusPoint, value: Value | PointFailure) -> list[int]:
    """``encode_value`` for a value known to be a register value, not a failure or a bit."""
    assert not isinstance(value, PointFailure)
    registers = encode_value(p, value)
    assert isinstance(registers, list)
    return registers


def as_float32(value: float) -> float:
    result: float = struct.unpack(">f", struct.pack(">f", value))[0]
    return result


# (type, byte_order, word_order, registers, value): each read and written both ways
VECTORS: list[tuple[str, str, str, list[int], int | float]] = [
    ("float32", "big", "big", [0x3FC0, 0x0000], 1.5),
    ("float32", "big", "little", [0x0000, 0x3FC0], 1.5),
    ("float32", "little", "big", [0xC03F, 0x0000], 1.5),
    ("float32", "little", "little", [0x0000, 0xC03F], 1.5),
    ("float32", "big", "big", [0xC0A0, 0x0000], -5.0),
    ("int16", "big", "big", [0xFFFE], -2),
    ("int16", "little", "big", [0xFEFF], -2),
    ("int16", "big", "little", [0xFFFE], -2),
    ("int16", "big", "big", [0x8000], -32768),
    ("uint16", "big", "big", [0xFFFF], 65535),
    ("uint16", "little", "little", [0x3412], 0x1234),
    ("int32", "big", "big", [0xFFFF, 0xFFFE], -2),
    ("int32", "big", "little", [0xFFFE, 0xFFFF], -2),
    ("uint32", "big", "big", [0x1234, 0x5678], 0x12345678),
    ("uint32", "big", "little", [0x5678, 0x1234], 0x12345678),
    ("uint32", "little", "big", [0x3412, 0x7856], 0x12345678),
    ("uint32", "little", "little", [0x7856, 0x3412], 0x12345678),
    ("int64", "big", "big", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], -2),
    ("int64", "big", "big", [0x8000, 0, 0, 0], -(2**63)),
    ("uint64", "big", "big", [0x0102, 0x0304, 0x0506, 0x0708], 0x0102030405060708),
    ("uint64", "big", "little", [0x0708, 0x0506, 0x0304, 0x0102], 0x0102030405060708),
    ("uint64", "little", "big", [0x0201, 0x0403, 0x0605, 0x0807], 0x0102030405060708),
    ("uint64", "little", "little", [0x0807, 0x0605, 0x0403, 0x0201], 0x0102030405060708),
    ("uint64", "big", "big", [0xFFFF] * 4, 2**64 - 1),
    ("float64", "big", "big", [0x3FF0, 0, 0, 0], 1.0),
    ("float64", "big", "big", [0xC004, 0, 0, 0], -2.5),
    ("float64", "big", "big", [0x3FB9, 0x9999, 0x9999, 0x999A], 0.1),
    ("float64", "big", "little", [0x999A, 0x9999, 0x9999, 0x3FB9], 0.1),
    ("float64", "little", "big", [0xB93F, 0x9999, 0x9999, 0x9A99], 0.1),
    ("float64", "little", "little", [0x9A99, 0x9999, 0x9999, 0xB93F], 0.1),
]


@pytest.mark.parametrize(("kind", "byte_order", "word_order", "registers", "value"), VECTORS)
def test_known_vectors_decode(
    kind: str, byte_order: str, word_order: str, registers: list[int], value: float
) -> None:
    p = point(kind, byte_order=byte_order, word_order=word_order)
    decoded = decode_registers(p, registers)
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(("kind", "byte_order", "word_order", "registers", "value"), VECTORS)
def test_known_vectors_encode(
    kind: str, byte_order: str, word_order: str, registers: list[int], value: float
) -> None:
    p = point(kind, byte_order=byte_order, word_order=word_order, writable=True)
    assert encode_value(p, value) == registers


def test_float32_reads_as_its_short_decimal() -> None:
    # 21.3 as a float32 is 21.299999237060547; the device meant 21.3
    assert decode_registers(point("float32"), [0x41AA, 0x6666]) == 21.3
    assert decode_registers(point("float32"), [0x3DCC, 0xCCCD]) == 0.1
    # the smallest subnormal needs its own digits, and still reads back as itself
    tiny = decode_registers(point("float32"), [0x0000, 0x0001])
    assert isinstance(tiny, float)
    assert struct.pack(">f", tiny) == b"\x00\x00\x00\x01"


@pytest.mark.parametrize(
    ("registers", "byte_order", "expected"),
    [
        ([0x4142], "big", "AB"),
        ([0x4142, 0x4300], "big", "ABC"),
        ([0x4241, 0x0043], "little", "ABC"),
        ([0x4142, 0x2020, 0x0000], "big", "AB"),
        ([0x2041, 0x4200], "big", " AB"),
        ([0x0000, 0x0000], "big", ""),
        ([0xE96C, 0xE800], "big", "élè"),
    ],
)
def test_strings_decode(registers: list[int], byte_order: str, expected: str) -> None:
    p = point("string", length=len(registers), byte_order=byte_order)
    assert decode_registers(p, registers) == expected


@pytest.mark.parametrize(
    ("register", "bit", "byte_order", "expected"),
    [
        (0b1000, 3, "big", True),
        (0b1000, 2, "big", False),
        (0x8000, 15, "big", True),
        (0x0001, 0, "big", True),
        (0xFFFE, 0, "big", False),
        (0x0100, 0, "little", True),
        (0x0001, 8, "little", True),
        (0x0001, 0, "little", False),
    ],
)
def test_bit_of_a_register(register: int, bit: int, byte_order: str, expected: bool) -> None:
    p = point("bool", bit=bit, byte_order=byte_order)
    assert decode_registers(p, [register]) is expected


@pytest.mark.parametrize(("register", "expected"), [(0, False), (1, True), (0x8000, True)])
def test_bool_without_bit_is_register_not_zero(register: int, expected: bool) -> None:
    assert decode_registers(point("bool"), [register]) is expected


def test_decode_bits() -> None:
    coil = ModbusPoint.model_validate({"id": "c", "table": "coil", "address": 3})
    assert decode_bits(coil, True) is True
    assert decode_bits(coil, False) is False


@pytest.mark.parametrize(
    ("kind", "registers", "fields", "expected"),
    [
        ("int16", [1234], {"scale": 0.01}, 12.34),
        ("int16", [3], {"scale": 0.1}, 0.3),
        ("int16", [0xFFFE], {"scale": 0.5}, -1.0),
        ("uint16", [2732], {"scale": 0.1, "offset": -273.15}, 0.05),
        ("uint16", [1], {"scale": 1e-05}, 1e-05),
        ("uint16", [7], {"scale": 10}, 70.0),
        ("uint16", [7], {"offset": 0.1}, 7.1),
        ("uint32", [0x00BC, 0x614E], {"scale": 0.001}, 12345.678),
        ("float32", [0x41AA, 0x6666], {"scale": 0.1}, 2.13),
        ("float32", [0x3FC0, 0x0000], {"offset": 0.25}, 1.75),
        ("float64", [0x3FB9, 0x9999, 0x9999, 0x999A], {"scale": 3}, 0.3),
        ("bool", [5], {"scale": 10, "offset": 2}, True),
        ("string", [0x4142], {"length": 1, "scale": 10}, "AB"),
    ],
)
def test_scale_and_offset(
    kind: str, registers: list[int], fields: dict[str, Any], expected: Value
) -> None:
    decoded = decode_registers(point(kind, **fields), registers)
    assert decoded == expected
    assert type(decoded) is type(expected)


def test_unscaled_integers_stay_int() -> None:
    decoded = decode_registers(point("uint64"), [0xFFFF] * 4)
    assert decoded == 2**64 - 1
    assert type(decoded) is int


@given(
    raw=st.integers(-(2**15), 2**15 - 1),
    scale=st.sampled_from([0.1, 0.01, 0.001, 0.05, 2.5, 10.0, 1e-06, 0.3]),
    offset=st.sampled_from([0.0, -273.15, 1.5, 100.0, -0.001]),
)
def test_scaled_integer_is_the_decimal_result(raw: int, scale: float, offset: float) -> None:
    # the rounding rule: what decimal arithmetic on the numbers as written gives
    exact = Decimal(raw) * Decimal(repr(scale)) + Decimal(repr(offset))
    p = point("int16", scale=scale, offset=offset)
    assert decode_registers(p, [raw & 0xFFFF]) == float(exact)


@pytest.mark.parametrize(
    ("kind", "registers", "fields"),
    [
        ("float32", [0x7FC0, 0x0000], {}),
        ("float32", [0x7F80, 0x0000], {}),
        ("float32", [0xFF80, 0x0000], {"scale": 2}),
        ("float32", [0x0000, 0x7FC0], {"word_order": "little"}),
        ("float64", [0x7FF8, 0, 0, 0], {}),
        ("float64", [0x7FEF, 0xFFFF, 0xFFFF, 0xFFFF], {"scale": 10}),
        ("uint64", [0xFFFF] * 4, {"scale": 1e300}),
    ],
)
def test_not_finite_is_a_failure(kind: str, registers: list[int], fields: dict[str, Any]) -> None:
    assert decode_registers(point(kind, **fields), registers) == PointFailure("not a finite number")


def test_decode_registers_wants_exactly_the_width() -> None:
    with pytest.raises(ValueError, match="2 register"):
        decode_registers(point("float32"), [0x3FC0])
    coil = ModbusPoint.model_validate({"id": "c", "table": "coil", "address": 0})
    with pytest.raises(ValueError, match="decode_bits"):
        decode_registers(coil, [1])


def block_of(*points: ModbusPoint) -> ReadBlock:
    (block,) = plan_reads(points, max_gap=125)
    return block


def test_decode_block_reads_every_point_in_one_pass() -> None:
    points = [
        point("float32", address=10, id="temp"),
        point("int16", address=12, id="level", scale=0.1),
        point("bool", address=13, id="alarm", bit=3),
        point("uint16", address=13, id="status"),
        point("string", address=15, id="model", length=2),
    ]
    block = block_of(*points)
    assert (block.start, block.count) == (10, 7)
    data = [0x3FC0, 0x0000, 0xFFF6, 0b1000, 0x9999, 0x4142, 0x4300]
    assert [(p.id, v) for p, v in decode_block(block, data)] == [
        ("temp", 1.5),
        ("level", -1.0),
        ("alarm", True),
        ("status", 8),
        ("model", "ABC"),
    ]


@pytest.mark.parametrize(
    ("order", "scale"), [([0, 1, 2, 3], 1.0), ([0, 1, 2, 3], 0.5), ([3, 1, 0, 2], 1.0)]
)
def test_a_block_decodes_into_each_points_place_in_the_devices_column(
    order: list[int], scale: float
) -> None:
    """Whatever the order of the points in the device file, each value lands at its
    point's place: by one slice where the places follow one another, else one by one."""
    points = [
        point("uint16", address=0, id="a"),
        point("int16", address=1, id="b"),
        point("uint16", address=2, id="c", scale=scale),
        point("uint32", address=3, id="d"),
    ]
    block = block_of(*points)
    in_file = [points[i] for i in order]  # the device's points, as the file lists them
    decoder = BlockDecoder(block, [in_file.index(p) for p in block.points])
    column: list[Value | PointFailure | None] = [None] * (len(points) + 1)
    decoder.decode_into(struct.pack(">HhHI", 7, -2, 9, 70000), column)
    wanted = {"a": 7, "b": -2, "c": 9 * scale, "d": 70000}
    assert column == [wanted[p.id] for p in in_file] + [None]


def test_short_answer_fails_only_the_points_past_its_end() -> None:
    block = block_of(
        point("uint16", address=0, id="a"),
        point("float32", address=1, id="b"),
        point("uint16", address=3, id="c"),
    )
    decoded = dict((p.id, v) for p, v in decode_block(block, [7, 0x3FC0]))
    assert decoded["a"] == 7
    assert isinstance(decoded["b"], PointFailure)
    assert isinstance(decoded["c"], PointFailure)
    assert "2 of the 4 registers" in decoded["b"].error
    assert [v for _, v in decode_block(block, [7, 0x3FC0, 0, 9, 99])] == [7, 1.5, 9]


def test_bit_blocks_and_short_bit_answers() -> None:
    coils = [
        ModbusPoint.model_validate({"id": f"c{i}", "table": "coil", "address": a})
        for i, a in enumerate([0, 3, 9])
    ]
    block = block_of(*coils)
    assert block.count == 10
    bits = [True, False, False, True, False, False, False, False, False, True]
    assert [v for _, v in decode_block(block, [*bits, False, False])] == [True, True, True]
    short = [v for _, v in decode_block(block, bits[:8])]
    assert short[:2] == [True, True]
    assert isinstance(short[2], PointFailure)


def registers_strategy(width: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, 0xFFFF), min_size=width, max_size=width)


@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
@pytest.mark.parametrize("kind", list(INTEGER_RANGES))
@given(data=st.data())
def test_integers_round_trip(
    kind: str, byte_order: str, word_order: str, data: st.DataObject
) -> None:
    p = point(kind, byte_order=byte_order, word_order=word_order, writable=True)
    value = data.draw(st.integers(*INTEGER_RANGES[kind]))
    registers = encode_value(p, value)
    assert isinstance(registers, list)
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode_registers(p, registers) == value
    raw = data.draw(registers_strategy(WIDTHS[kind]))
    assert registers_of(p, decode_registers(p, raw)) == raw


@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
@given(value=st.floats(allow_nan=False, allow_infinity=False), raw=registers_strategy(4))
def test_float64_round_trips(
    byte_order: str, word_order: str, value: float, raw: list[int]
) -> None:
    p = point("float64", byte_order=byte_order, word_order=word_order)
    assert decode_registers(p, registers_of(p, value)) == value
    decoded = decode_registers(p, raw)
    if not isinstance(decoded, PointFailure):
        assert encode_value(p, decoded) == raw


@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
@given(value=st.floats(allow_nan=False, allow_infinity=False, width=32), raw=registers_strategy(2))
def test_float32_round_trips(
    byte_order: str, word_order: str, value: float, raw: list[int]
) -> None:
    p = point("float32", byte_order=byte_order, word_order=word_order)
    decoded = decode_registers(p, registers_of(p, value))
    assert isinstance(decoded, float)
    assert as_float32(decoded) == value
    # every finite register pair survives decode then encode bit for bit (-0.0 included)
    decoded = decode_registers(p, raw)
    if not isinstance(decoded, PointFailure):
        assert encode_value(p, decoded) == raw


@pytest.mark.parametrize("kind", ["int16", "uint16", "int32", "uint32"])
@given(
    data=st.data(),
    scale=st.sampled_from([0.1, 0.01, 0.001, 0.05, 2.5, 10.0, 0.3, -0.5]),
    offset=st.sampled_from([0.0, -273.15, 1.5, 100.0]),
)
def test_scaled_integers_round_trip(
    kind: str, data: st.DataObject, scale: float, offset: float
) -> None:
    p = point(kind, scale=scale, offset=offset)
    raw = data.draw(registers_strategy(WIDTHS[kind]))
    assert registers_of(p, decode_registers(p, raw)) == raw


@given(
    text=st.text(st.characters(max_codepoint=255), max_size=8).map(lambda s: s.rstrip("\x00 ")),
    length=st.integers(4, 6),
    byte_order=st.sampled_from(["big", "little"]),
)
def test_strings_round_trip(text: str, length: int, byte_order: str) -> None:
    p = point("string", length=length, byte_order=byte_order)
    registers = encode_value(p, text)
    assert isinstance(registers, list)
    assert len(registers) == length
    assert decode_registers(p, registers) == text


def test_string_encoding_pads_with_nuls() -> None:
    assert encode_value(point("string", length=1), "AB") == [0x4142]
    assert encode_value(point("string", length=3), "ABC") == [0x4142, 0x4300, 0x0000]
    little = point("string", length=2, byte_order="little")
    assert encode_value(little, "ABC") == [0x4241, 0x0043]


def test_bools_encode() -> None:
    coil = ModbusPoint.model_validate({"id": "c", "table": "coil", "address": 0, "writable": True})
    assert encode_value(coil, True) is True
    assert encode_value(coil, False) is False
    assert encode_value(point("bool", bit=3), True) is True
    assert encode_value(point("bool"), True) == [1]
    assert encode_value(point("bool"), False) == [0]


@pytest.mark.parametrize(
    ("register", "bit", "value", "byte_order", "expected"),
    [
        (0x0000, 3, True, "big", 0x0008),
        (0xFFFF, 3, False, "big", 0xFFF7),
        (0x1234, 15, True, "big", 0x9234),
        (0x0008, 3, True, "big", 0x0008),
        (0x0000, 0, True, "little", 0x0100),
        (0xFFFF, 8, False, "little", 0xFFFE),
    ],
)
def test_encode_bit(register: int, bit: int, value: bool, byte_order: str, expected: int) -> None:
    written = encode_bit(register, bit, value, byte_order=byte_order)
    assert written == expected
    p = point("bool", bit=bit, byte_order=byte_order)
    assert decode_registers(p, [written]) is value


@pytest.mark.parametrize(
    ("kind", "fields", "value"),
    [
        ("int16", {"scale": 0.01}, 12.34),
        ("int16", {"scale": 0.1, "offset": -273.15}, 21.85),
        ("int16", {}, 12.6),
        ("uint16", {"scale": 10}, 70),
    ],
)
def test_encode_applies_inverse_scale_and_rounds(
    kind: str, fields: dict[str, Any], value: float
) -> None:
    p = point(kind, **fields)
    expected = round((value - p.offset) / p.scale)
    assert encode_value(p, value) == [expected & 0xFFFF]
    assert {12.34: 1234, 21.85: 2950, 12.6: 13, 70: 7}[value] == expected


@pytest.mark.parametrize(
    ("kind", "fields", "value", "message"),
    [
        ("int16", {}, 32768, "out of range"),
        ("int16", {}, -32769, "out of range"),
        ("uint16", {}, -1, "out of range"),
        ("uint64", {}, 2**64, "out of range"),
        ("int16", {"scale": 0.01}, 400, "raw 40000"),
        ("int32", {"scale": 1e-300}, 1.0, "out of range"),
        ("float32", {}, 1e39, "out of range"),
        ("float64", {}, 10**400, "out of range"),
        ("float64", {"scale": 1e-300}, 1e300, "out of range"),
        ("float32", {}, "12", "takes a number"),
        ("int16", {}, True, "takes a number"),
        ("float32", {}, math.nan, "finite"),
        ("float64", {}, math.inf, "finite"),
        ("int16", {"min": 0, "max": 90}, 91, "above the maximum 90"),
        ("float32", {"min": 0, "max": 90}, -0.5, "below the minimum 0"),
        ("bool", {}, 1, "true or false"),
        ("bool", {"bit": 2}, "on", "true or false"),
        ("string", {"length": 2}, 12, "takes a string"),
        ("string", {"length": 2}, "ABCDE", "longer than the 4 characters"),
        ("string", {"length": 2}, "€", "latin-1"),
    ],
)
def test_bad_values_are_refused(
    kind: str, fields: dict[str, Any], value: Any, message: str
) -> None:
    with pytest.raises(BadValue, match=message):
        encode_value(point(kind, **fields), value)


def test_coil_refuses_a_number() -> None:
    coil = ModbusPoint.model_validate({"id": "c", "table": "coil", "address": 0})
    with pytest.raises(BadValue, match="true or false"):
        encode_value(coil, 1)
