"""Turning Modbus registers and bits into point values, and values back into registers.

Pure functions, tested to the bit; they do not know the Modbus library.

Layout. A value of N registers is ``2 * N`` bytes. ``byte_order: little`` swaps the two
bytes inside each register; ``word_order: little`` puts the least significant register
first. A ``bool`` with ``bit`` is that bit (0 = least significant) of the register read as
a ``uint16`` with the point's byte order; a ``bool`` without ``bit`` is ``register != 0``.
A ``string`` is ``length`` registers of two latin-1 characters each, the high byte first
unless ``byte_order`` is little (``word_order`` does not apply); trailing NULs and spaces
are dropped.

Scale and offset apply to numbers (not bools or strings) as :mod:`drivers.scaling` says.
With ``scale == 1`` and ``offset == 0`` an integer type reads as an ``int`` and a float type
as its raw value; otherwise the value is a ``float``, rounded to the decimal places of the
exact decimal result (the raw value of an integer type has none).

Float32. A ``float32`` reads as the shortest decimal of up to 7 significant digits (8 or 9
when needed) that is the same ``float32`` again, so a device's ``21.3`` reads ``21.3``
rather than ``21.299999237060547``; writing that value back gives the same bits.

A value that is NaN or infinite is :data:`~drivers.scaling.NOT_FINITE`, never a reading.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from struct import Struct

from drivers.base import BadValue, PointFailure, Value, check_number
from drivers.modbus.config import BIT_TABLES, REGISTER_WIDTH, ModbusPoint
from drivers.scaling import NOT_FINITE, Scaling, decimal_places

#: struct code and inclusive range of each integer type
INTEGERS: dict[str, tuple[str, int, int]] = {
    "int16": ("h", -(2**15), 2**15 - 1),
    "uint16": ("H", 0, 2**16 - 1),
    "int32": ("i", -(2**31), 2**31 - 1),
    "uint32": ("I", 0, 2**32 - 1),
    "int64": ("q", -(2**63), 2**63 - 1),
    "uint64": ("Q", 0, 2**64 - 1),
}
_FLOATS: dict[str, str] = {"float32": "f", "float64": "d"}

_FLOAT32 = Struct(">f")

# Both take (registers, the block's registers packed big-endian, offset in registers).
Decode = Callable[[Sequence[int], bytes, int], "Value | PointFailure"]
_Raw = Callable[[Sequence[int], bytes, int], float]


@lru_cache(maxsize=256)
def registers_struct(count: int, order: str = ">") -> Struct:
    return Struct(f"{order}{count}H")


def _float32_text(raw: float) -> str:
    """The shortest decimal of 7 to 9 significant digits that reads back as ``raw``."""
    for spec in (".7g", ".8g"):
        text = format(raw, spec)
        if _FLOAT32.unpack(_FLOAT32.pack(float(text)))[0] == raw:
            return text
    return format(raw, ".9g")


def _integer_decoder(raw: _Raw, scaling: Scaling) -> Decode:
    if scaling.identity:
        return raw
    apply = scaling.apply

    def decode(registers: Sequence[int], buffer: bytes, at: int) -> Value | PointFailure:
        return apply(raw(registers, buffer, at))

    return decode


def _float_decoder(raw: _Raw, single: bool, scaling: Scaling) -> Decode:
    apply = scaling.apply

    def decode(registers: Sequence[int], buffer: bytes, at: int) -> Value | PointFailure:
        value = raw(registers, buffer, at)
        if not math.isfinite(value):
            return NOT_FINITE
        if scaling.identity:
            return float(_float32_text(value)) if single else value
        text = _float32_text(value) if single else repr(value)
        return apply(float(text), decimal_places(text))

    return decode


@lru_cache(maxsize=1024)
def _decoder(
    kind: str,
    byte_order: str,
    word_order: str,
    bit: int | None,
    length: int | None,
    scale: float,
    offset: float,
) -> tuple[int, Decode]:
    """The width and decoder of one register layout (shared by all points that have it)."""
    if kind == "bool":
        if bit is None:
            return 1, lambda registers, buffer, at: registers[at] != 0
        # a byte-swapped register: bit k of the value is bit k +/- 8 of what was sent
        shift = bit if byte_order == "big" else (bit + 8) % 16
        return 1, lambda registers, buffer, at: (registers[at] >> shift) & 1 == 1
    if kind == "string":
        assert length is not None
        size = 2 * length
        if byte_order == "big":

            def string(registers: Sequence[int], buffer: bytes, at: int) -> Value | PointFailure:
                start = 2 * at
                return buffer[start : start + size].decode("latin-1").rstrip("\x00 ")

            return length, string
        swapped = registers_struct(length, "<").pack

        def swapped_string(
            registers: Sequence[int], buffer: bytes, at: int
        ) -> Value | PointFailure:
            text = swapped(*registers[at : at + length]).decode("latin-1")
            return text.rstrip("\x00 ")

        return length, swapped_string

    width = REGISTER_WIDTH[kind]
    if width == 1:
        word_order = byte_order
    code = INTEGERS[kind][0] if kind in INTEGERS else _FLOATS[kind]
    unpack = Struct(("<" if word_order == "little" else ">") + code).unpack_from
    raw: _Raw
    if byte_order == word_order:
        # Both big, or both little (then the big-endian bytes are the value's little-endian
        # bytes): the block buffer holds the value as is.
        def raw(registers: Sequence[int], buffer: bytes, at: int) -> float:
            number: float = unpack(buffer, 2 * at)[0]
            return number

    else:
        pack = registers_struct(width, "<").pack

        def raw(registers: Sequence[int], buffer: bytes, at: int) -> float:
            number: float = unpack(pack(*registers[at : at + width]))[0]
            return number

    if kind in INTEGERS:
        return width, _integer_decoder(raw, Scaling(scale, offset))
    return width, _float_decoder(raw, kind == "float32", Scaling(scale, offset))


# Points by identity: building the layout key costs more than decoding a register. Entries
# hold their point, so an id is not reused while it is a key; the bound covers reloads.
_BY_POINT: dict[int, tuple[ModbusPoint, int, Decode]] = {}
CACHE_MAX = 65536


def point_decoder(point: ModbusPoint) -> tuple[int, Decode]:
    """The width and decoder of a register-table point (made once per point and kept)."""
    entry = _BY_POINT.get(id(point))
    if entry is not None and entry[0] is point:
        return entry[1], entry[2]
    width, decode = _layout(point)
    if len(_BY_POINT) >= CACHE_MAX:
        _BY_POINT.clear()
    _BY_POINT[id(point)] = (point, width, decode)
    return width, decode


def _layout(point: ModbusPoint) -> tuple[int, Decode]:
    return _decoder(
        point.type,
        point.byte_order,
        point.word_order,
        point.bit,
        point.length,
        point.scale,
        point.offset,
    )


def decode_registers(point: ModbusPoint, registers: Sequence[int]) -> Value | PointFailure:
    """Decode a register-table point from exactly its ``point.width`` registers (0..65535).

    Raises ValueError when given another number of registers, or a bit-table point.
    """
    if point.table in BIT_TABLES:
        raise ValueError(f"point {point.id!r} is a {point.table}: use decode_bits")
    width, decode = point_decoder(point)
    if len(registers) != width:
        raise ValueError(f"point {point.id!r} takes {width} register(s), not {len(registers)}")
    return decode(registers, registers_struct(width).pack(*registers), 0)


def decode_bits(point: ModbusPoint, bit: bool) -> bool:
    """The value of a coil or discrete-input point from its bit."""
    return bool(bit)


def encode_bit(register: int, bit: int, value: bool, *, byte_order: str = "big") -> int:
    """``register`` (as read) with one bit set to ``value``, for a read-modify-write of a
    ``bool`` point with ``bit``; pass the point's ``byte_order`` to match its decoding."""
    shift = bit if byte_order == "big" else (bit + 8) % 16
    return register | (1 << shift) if value else register & ~(1 << shift) & 0xFFFF


def _value_order(point: ModbusPoint) -> str:
    """The struct order of a number's bytes as the decoder unpacks them (see ``_decoder``)."""
    order = point.word_order if point.width > 1 else point.byte_order
    return "<" if order == "little" else ">"


def _value_bytes(point: ModbusPoint, value: Value) -> bytes:
    number = check_number(point.id, value, point.min, point.max)
    raw = point.scaling.invert(point.id, number)
    order = _value_order(point)
    kind = point.type
    if kind in INTEGERS:
        code, low, high = INTEGERS[kind]
        if isinstance(raw, float):
            if not math.isfinite(raw):
                raise BadValue(f"{value!r} is out of range for point {point.id!r}")
            raw = round(raw)
        if not low <= raw <= high:
            scaled = "" if point.scaling.identity else f" (raw {raw} after scale and offset)"
            raise BadValue(
                f"{value!r}{scaled} is out of range for point {point.id!r}: "
                f"{kind} holds {low}..{high}"
            )
        return Struct(order + code).pack(raw)
    try:
        number = float(raw)
        if math.isfinite(number):
            return Struct(order + _FLOATS[kind]).pack(number)
    except OverflowError:  # an int beyond any float, or beyond float32
        pass
    raise BadValue(f"{value!r} is out of range for {kind} point {point.id!r}")


def encode_value(point: ModbusPoint, value: Value) -> list[int] | bool:
    """What to write for ``value``: the point's registers, or a bool for a single bit.

    A bool is returned for coils and for ``bool`` points with ``bit``; the latter need a
    read-modify-write of their register with :func:`encode_bit`. Numbers get the inverse of
    scale and offset, ``raw = (value - offset) / scale``, rounded to the nearest integer
    (ties to even) for integer types. Raises BadValue when the value has the wrong type (a
    bool for a number, a number for a bool or string), is not finite, lies outside the
    point's ``min``/``max`` or its type's range, or is a string that is not latin-1 or is
    longer than ``2 * length`` characters. Strings are padded with NULs.
    """
    kind = point.type
    if kind == "bool":
        if not isinstance(value, bool):
            raise BadValue(f"point {point.id!r} takes true or false, not {value!r}")
        if point.table in BIT_TABLES or point.bit is not None:
            return value
        return [int(value)]
    if kind == "string":
        return _encode_string(point, value)
    data = _value_bytes(point, value)
    # the inverse of decoding, which packs registers big-endian when the byte order agrees
    # with the value's order and little-endian otherwise
    agree = (point.byte_order == "little") == (_value_order(point) == "<")
    return list(registers_struct(point.width, ">" if agree else "<").unpack(data))


def _encode_string(point: ModbusPoint, value: Value) -> list[int]:
    if not isinstance(value, str):
        raise BadValue(f"point {point.id!r} takes a string, not {value!r}")
    length = point.width
    try:
        data = value.encode("latin-1")
    except UnicodeEncodeError:
        raise BadValue(f"point {point.id!r} takes latin-1 characters only") from None
    if len(data) > 2 * length:
        raise BadValue(
            f"{value!r} is longer than the {2 * length} characters point {point.id!r} holds"
        )
    data = data.ljust(2 * length, b"\x00")
    order = ">" if point.byte_order == "big" else "<"
    return list(registers_struct(length, order).unpack(data))
