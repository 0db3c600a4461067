"""Decoding a whole read block: every point of one Modbus reply in one pass.

:func:`decode_block` is the pure function (a block and the registers or bits that came
back); :class:`BlockDecoder`, made once per block, is what a poll uses on the reply's
bytes. Each point's own layout is :mod:`drivers.modbus.codec`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from struct import Struct
from typing import cast

from drivers.base import PointFailure, Value
from drivers.modbus.codec import (
    CACHE_MAX,
    INTEGERS,
    Decode,
    point_decoder,
    registers_struct,
)
from drivers.modbus.config import ModbusPoint
from drivers.modbus.planner import ReadBlock


class BlockDecoder:
    """A block's points decoded in one pass over the reply: made once per block.

    Each point's value goes to its position in a column (the device's points in file
    order, :class:`drivers.base.PointValues`); ``positions`` are those of the block's
    points. Points that read their registers as they are (an integer type, no scale or
    offset, big-endian byte and word order, not overlapping the previous one) are unpacked
    together by one ``Struct`` of the whole block, gaps skipped as pad bytes, and stored by
    one slice assignment when their positions follow one another; every other point
    (floats, scaled values, bools, strings, other orders, overlaps) has its own decoder.
    """

    __slots__ = ("_direct", "_others", "_span", "_unpack", "block")

    def __init__(self, block: ReadBlock, positions: Sequence[int]) -> None:
        self.block = block
        layout, cursor = [">"], 0
        direct: list[int] = []
        others: list[tuple[int, int, Decode]] = []
        for point, position in zip(block.points, positions, strict=True):
            at = point.address - block.start
            width, decode = point_decoder(point)
            if _is_direct(point) and at >= cursor:
                layout.append(f"{2 * (at - cursor)}x{INTEGERS[point.type][0]}")
                direct.append(position)
                cursor = at + width
            else:
                others.append((position, at, decode))
        self._direct = tuple(direct)
        #: the slice the direct points fill, if their positions follow one another
        self._span: slice | None = None
        if direct and direct == list(range(direct[0], direct[0] + len(direct))):
            self._span = slice(direct[0], direct[0] + len(direct))
        self._unpack = Struct("".join(layout)).unpack_from
        self._others = tuple(others)

    def decode_into(self, data: bytes, column: list[Value | PointFailure | None]) -> None:
        """Decode every point from the block's data bytes (two a register, as received)
        into its position in ``column``. ``data`` must hold the whole block."""
        if self._span is not None:
            column[self._span] = self._unpack(data)
        else:
            for position, value in zip(self._direct, self._unpack(data), strict=True):
                column[position] = value
        if self._others:
            registers = registers_struct(len(data) // 2).unpack(data)
            for position, at, decode in self._others:
                column[position] = decode(registers, data, at)


def _is_direct(point: ModbusPoint) -> bool:
    return (
        point.type in INTEGERS
        and point.scaling.identity
        and point.byte_order == "big"
        and (point.width == 1 or point.word_order == "big")
    )


_DECODERS: dict[int, BlockDecoder] = {}


def block_decoder(block: ReadBlock) -> BlockDecoder:
    """The decoder of a register block (bit blocks have none) into a column of the block's
    own points, in its order, made once and kept."""
    decoder = _DECODERS.get(id(block))
    if decoder is None or decoder.block is not block:
        if len(_DECODERS) >= CACHE_MAX:
            _DECODERS.clear()
        decoder = _DECODERS[id(block)] = BlockDecoder(block, range(len(block.points)))
    return decoder


def decode_block(
    block: ReadBlock, data: Sequence[int] | Sequence[bool]
) -> list[tuple[ModbusPoint, Value | PointFailure]]:
    """Decode every point of a block from what the device answered, in the block's order.

    ``data`` holds the block's registers (0..65535) or bits from ``block.start`` on; extra
    items are ignored (bit answers come padded to bytes). When it is shorter than
    ``block.count``, each point that does not fit entirely is a PointFailure.
    """
    start = block.start
    have = min(len(data), block.count)
    if block.is_bits:
        short = _short(block, have)
        return [
            (point, bool(data[at]) if (at := point.address - start) < have else short)
            for point in block.points
        ]
    registers = data if have == len(data) else data[:have]
    buffer = registers_struct(have).pack(*registers)
    if have == block.count:
        column: list[Value | PointFailure | None] = [None] * len(block.points)
        block_decoder(block).decode_into(buffer, column)
        return list(zip(block.points, cast("list[Value | PointFailure]", column), strict=True))
    short = _short(block, have)
    decoded: list[tuple[ModbusPoint, Value | PointFailure]] = []
    for point in block.points:
        width, decode = point_decoder(point)
        at = point.address - start
        decoded.append((point, decode(registers, buffer, at) if at + width <= have else short))
    return decoded


def _short(block: ReadBlock, have: int) -> PointFailure:
    return PointFailure(
        f"the device answered {have} of the {block.count} "
        f"{'bits' if block.is_bits else 'registers'} asked for"
    )
