"""Typed Modbus values as a device holds them: numbers and text encoded into registers.

Encoded with :mod:`struct` on purpose, independently of ``drivers/``: if the driver decodes
a value wrongly, a test against the simulator must fail rather than the same bug cancelling
itself out on both sides.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final, Literal, get_args

Table = Literal["holding", "input", "coil", "discrete"]
ValueType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool", "string"
]  # fmt: skip
Order = Literal["big", "little"]
Value = int | float | str | bool

TABLES: Final[tuple[Table, ...]] = get_args(Table)
VALUE_TYPES: Final[tuple[ValueType, ...]] = get_args(ValueType)
REGISTER_TABLES: Final = frozenset({"holding", "input"})
BIT_TABLES: Final = frozenset({"coil", "discrete"})
TABLE_SIZE: Final = 65536

#: struct format (big-endian, whole value) of every numeric type
_STRUCT: Final[dict[str, str]] = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I",
    "int64": ">q", "uint64": ">Q", "float32": ">f", "float64": ">d",
}  # fmt: skip


def register_width(type: ValueType, length: int | None = None) -> int:
    """Registers a value of ``type`` occupies (``length`` for strings, 1 for bool)."""
    if type == "string":
        if length is None:
            raise ValueError("a string needs length (registers, two characters each)")
        return length
    if type == "bool":
        return 1
    return struct.calcsize(_STRUCT[type]) // 2


def encode_registers(
    type: ValueType,
    value: Value,
    *,
    byte_order: Order = "big",
    word_order: Order = "big",
    length: int | None = None,
) -> list[int]:
    """Encode ``value`` as the registers a device with that layout would hold.

    Words are most significant first unless ``word_order`` is ``"little"``; bytes inside
    each register are swapped when ``byte_order`` is ``"little"``. Strings are ASCII,
    NUL-padded to ``length`` registers (default: just long enough); they honour
    ``byte_order`` but not ``word_order``, as devices store text in reading order.
    Raises ValueError when the value does not fit the type.
    """
    if type == "bool":
        raise ValueError("bool is a coil or discrete input: use set_bits, not registers")
    if type == "string":
        if not isinstance(value, str):
            raise ValueError(f"a string value must be text, not {value!r}")
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"{value!r} is not ASCII") from None
        if length is None:
            length = max(1, (len(raw) + 1) // 2)
        if len(raw) > 2 * length:
            raise ValueError(f"{value!r} is longer than {length} registers ({2 * length} bytes)")
        raw = raw.ljust(2 * length, b"\0")
        words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    else:
        raw = _pack_number(type, value)
        words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
        if word_order == "little":
            words.reverse()
    if byte_order == "little":
        words = [word[::-1] for word in words]
    return [int.from_bytes(word, "big") for word in words]


def decode_registers(
    type: ValueType,
    registers: Iterable[int],
    *,
    byte_order: Order = "big",
    word_order: Order = "big",
) -> int | float | str:
    """Inverse of :func:`encode_registers`; strings lose their trailing NULs."""
    words = [register.to_bytes(2, "big") for register in registers]
    if byte_order == "little":
        words = [word[::-1] for word in words]
    if type == "string":
        return b"".join(words).rstrip(b"\0").decode("ascii", errors="replace")
    if type == "bool":
        raise ValueError("bool is a coil or discrete input: use get_bits, not registers")
    if word_order == "little":
        words.reverse()
    value: int | float = struct.unpack(_STRUCT[type], b"".join(words))[0]
    return value


def _pack_number(type: ValueType, value: Value) -> bytes:
    fmt = _STRUCT[type]
    if isinstance(value, str):
        raise ValueError(f"a {type} value must be a number, not {value!r}")
    if type.startswith("float"):
        return struct.pack(fmt, float(value))
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"a {type} value must be a whole number, not {value!r}")
        value = int(value)
    try:
        return struct.pack(fmt, int(value))
    except struct.error:
        raise ValueError(f"{value!r} is out of range for {type}") from None


def wrap_integer(type: ValueType, value: int) -> int:
    """Bring ``value`` into the range of integer ``type`` the way a register overflows."""
    bits = 16 * register_width(type)
    value %= 1 << bits
    if type.startswith("int") and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value
