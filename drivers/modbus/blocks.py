"""Decoding a whole read block: every point of one Modbus reply in one pass.

:func:`decode_block` is the pure function (a block and the registers or bits that came
back); :class:`BlockDecoder`, made once per block, is what a poll uses on the reply's
bytes. Each point's own layout is :mod:`drivers.modbus.codec`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from struct import Struct

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

    Points that read their registers as they are (an integer type, no scale or offset,
    big-endian byte and word order, not overlapping the previous one) are unpacked together
    by one ``Struct`` of the whole block, gaps skipped as pad bytes; every other point
    (floats, scaled values, bools, strings, other orders, overlaps) has its own decoder.
    """

    __slots__ = ("_direct_ids", "_others", "_unpack", "block")

    def __init__(self, block: ReadBlock) -> None:
        self.block = block
        layout, cursor = [">"], 0
        direct: list[str] = []
        others: list[tuple[str, int, int, Decode]] = []
        for point in block.points:
            at = point.address - block.start
            width, decode = point_decoder(point)
            if _is_direct(point) and at >= cursor:
                layout.append(f"{2 * (at - cursor)}x{INTEGERS[point.type][0]}")
                direct.append(point.id)
                cursor = at + width
            else:
                others.append((point.id, at, width, decode))
        self._direct_ids = tuple(direct)
        self._unpack = Struct("".join(layout)).unpack_from
        self._others = tuple(others)

    def decode_into(self, data: bytes, results: dict[str, Value | PointFailure]) -> None:
        """Decode every point from the block's data bytes (two a register, as received)
        into ``results`` by point id. ``data`` must hold the whole block."""
        results.update(zip(self._direct_ids, self._unpack(data), strict=True))
        if self._others:
            registers = registers_struct(len(data) // 2).unpack(data)
            for point_id, at, _, decode in self._others:
                results[point_id] = decode(registers, data, at)


def _is_direct(point: ModbusPoint) -> bool:
    return (
        point.type in INTEGERS
        and point.scaling.identity
        and point.byte_order == "big"
        and (point.width == 1 or point.word_order == "big")
    )


_DECODERS: dict[int, BlockDecoder] = {}


def block_decoder(block: ReadBlock) -> BlockDecoder:
    """The decoder of a register block (bit blocks have none), made once and kept."""
    decoder = _DECODERS.get(id(block))
    if decoder is None or decoder.block is not block:
        if len(_DECODERS) >= CACHE_MAX:
            _DECODERS.clear()
        decoder = _DECODERS[id(block)] = BlockDecoder(block)
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
        results: dict[str, Value | PointFailure] = {}
        block_decoder(block).decode_into(buffer, results)
        return [(point, results[point.id]) for point in block.points]
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
