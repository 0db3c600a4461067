"""Every way a run of registers can be read, for ``device-bridge probe``.

A device manual says "float32" but rarely which register comes first; a wrong guess gives
a plausible, wrong number. :func:`decodings` reads the same registers as every numeric
type under every byte order and word order, through the driver's own codec, so the right
layout can be picked by eye. The layouts have the names Modbus tools give them: ``ABCD``
(big bytes, big words: the Modbus default), ``CDAB`` (word order little, common on PLCs),
``BADC`` (byte order little) and ``DCBA`` (both little), where ``A`` is the most
significant byte of a 32-bit value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from drivers.base import PointFailure, Value
from drivers.modbus.codec import decode_registers
from drivers.modbus.config import REGISTER_WIDTH, ModbusPoint, Order

NUMERIC_TYPES = ("int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64")

#: (byte_order, word_order) -> the layout's usual name
LAYOUT_NAMES: dict[tuple[Order, Order], str] = {
    ("big", "big"): "ABCD",
    ("big", "little"): "CDAB",
    ("little", "big"): "BADC",
    ("little", "little"): "DCBA",
}


@dataclass(frozen=True, slots=True)
class Decoding:
    """The values of consecutive ``type`` items from the first register, in one layout."""

    type: str
    byte_order: Order
    word_order: Order
    values: tuple[Value | None, ...]
    """One per item; None where the registers are not a finite number of this type."""

    @property
    def layout(self) -> str:
        """``ABCD``, ``CDAB``, ``BADC`` or ``DCBA``; ``AB``/``BA`` for 16 bits, 8 letters for 64."""
        return layout_name(self.byte_order, self.word_order, REGISTER_WIDTH[self.type])


def layout_name(byte_order: Order, word_order: Order, width: int) -> str:
    """The usual name of a layout of ``width`` registers: ``ABCD`` for 32 bits, ``AB`` for
    16, ``ABCDEFGH`` for 64 (``GHEFCDAB`` with the word order little)."""
    letters = "ABCDEFGH"[: 2 * width]
    words = [letters[i : i + 2] for i in range(0, len(letters), 2)]
    if word_order == "little" and width > 1:
        words.reverse()
    if byte_order == "little":
        words = [word[::-1] for word in words]
    return "".join(words)


def decode_as(
    registers: Sequence[int], type: str, byte_order: Order, word_order: Order
) -> tuple[Value | None, ...]:
    """Consecutive values of ``type`` read from ``registers`` (extra registers left over)."""
    width = REGISTER_WIDTH[type]
    point = ModbusPoint.model_validate(
        {"id": "probe", "table": "holding", "address": 0, "type": type,
         "byte_order": byte_order, "word_order": word_order}
    )  # fmt: skip
    values: list[Value | None] = []
    for at in range(0, len(registers) - width + 1, width):
        value = decode_registers(point, registers[at : at + width])
        values.append(None if isinstance(value, PointFailure) else value)
    return tuple(values)


def decodings(registers: Sequence[int]) -> list[Decoding]:
    """Every numeric type that fits in ``registers``, under every layout that differs.

    For one-register types only the byte order matters; the word order is then ``big``.
    """
    found: list[Decoding] = []
    for type in NUMERIC_TYPES:
        if REGISTER_WIDTH[type] > len(registers):
            continue
        for (byte_order, word_order), _ in LAYOUT_NAMES.items():
            if REGISTER_WIDTH[type] == 1 and word_order == "little":
                continue
            values = decode_as(registers, type, byte_order, word_order)
            found.append(Decoding(type, byte_order, word_order, values))
    return found
