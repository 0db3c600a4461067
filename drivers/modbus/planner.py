"""Which requests one poll of a Modbus device sends, and how refusals make them smaller.

Planning
--------
:func:`plan_reads` merges the points of one device into :class:`ReadBlock` requests: one
table per block, points sorted by address, two neighbours merged when the unused addresses
between them are at most ``max_gap`` (``max_gap * 16`` for coils and discrete inputs, where
an address is one bit) and the block stays within ``max_registers`` / ``max_bits``. The
result is deterministic (independent of the order the points are given in) and has the
fewest blocks those rules allow.

Learning from refusals
----------------------
Some devices refuse a read that covers an address they do not implement (Modbus exception
2, illegal data address), even when every configured point is fine. The driver learns where
such holes are, with these pure functions, so that one bad address never blinds the rest:

1. A block is refused with exception 2.

   - If it has two points or more, the driver calls :func:`split_block` and reads both
     halves (recursively, in the same poll). If *both* halves are read without a refusal,
     the hole lies in the unused addresses between them: the driver adds
     :func:`barrier_between` ``(left, right)`` to its barriers.
   - If it has one point, that point itself is unreadable: the driver adds its id to its
     isolated ids and reports a :class:`~drivers.base.PointFailure` for it.

2. After a poll that learned something, the driver calls :func:`plan_reads` again with
   ``barriers=`` and ``isolated=`` (both only ever grow, for the life of the link). A
   barrier keeps every block from spanning across its address; an isolated point is read
   alone, and fails alone, in every later poll.

Every barrier so learned is true of the device (any block that spans it covers the hole),
and the planner is optimal under its constraints, so the loop reaches a fixed point where a
poll costs the minimum number of requests: one per readable block, plus one per unreadable
point. Each poll that refuses something, before that point, adds at least one barrier or
isolated id, so it is reached after a few polls.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drivers.modbus.config import BIT_TABLES, ModbusPoint, Table

#: the Modbus function code that reads each table
FUNCTION_CODES: dict[str, int] = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: ``count`` registers (or bits) of ``table`` from ``start``.

    ``points`` are the points the request serves, sorted by address (then id); each lies
    entirely within ``start .. start + count - 1``, and points may overlap.
    """

    table: Table
    start: int
    count: int
    points: tuple[ModbusPoint, ...]

    @property
    def end(self) -> int:
        """The first address after the block."""
        return self.start + self.count

    @property
    def is_bits(self) -> bool:
        """Whether the block reads bits (coils, discrete inputs) rather than registers."""
        return self.table in BIT_TABLES

    @property
    def function_code(self) -> int:
        """The Modbus function code of the request: 1 coil, 2 discrete, 3 holding, 4 input."""
        return FUNCTION_CODES[self.table]


def _sort_key(point: ModbusPoint) -> tuple[int, str]:
    return point.address, point.id


def _crosses(cuts: Sequence[int], start: int, end: int) -> bool:
    """Whether some barrier address ``b`` in sorted ``cuts`` has ``start < b < end``."""
    index = bisect_right(cuts, start)
    return index < len(cuts) and cuts[index] < end


def _block(table: Table, points: Sequence[ModbusPoint]) -> ReadBlock:
    start = min(point.address for point in points)
    end = max(point.address + point.width for point in points)
    return ReadBlock(table, start, end - start, tuple(sorted(points, key=_sort_key)))


def _plan_table(
    table: Table,
    points: list[ModbusPoint],
    limit: int,
    cap: int,
    cuts: Sequence[int],
    isolated: frozenset[str],
) -> list[ReadBlock]:
    blocks: list[ReadBlock] = []
    group: list[ModbusPoint] = []
    start = end = 0
    for point in sorted(points, key=_sort_key):
        address = point.address
        point_end = address + point.width
        # A point that can share no block is left out of the sequence: merging across it
        # is still possible, which greedy merging by address would otherwise forbid.
        if point.id in isolated or point_end - address > cap or _crosses(cuts, address, point_end):
            blocks.append(ReadBlock(table, address, point_end - address, (point,)))
            continue
        if group:
            merged_end = max(end, point_end)
            if (
                address - end <= limit
                and merged_end - start <= cap
                and not _crosses(cuts, start, merged_end)
            ):
                group.append(point)
                end = merged_end
                continue
            blocks.append(ReadBlock(table, start, end - start, tuple(group)))
        group = [point]
        start, end = address, point_end
    if group:
        blocks.append(ReadBlock(table, start, end - start, tuple(group)))
    return blocks


def _block_order(block: ReadBlock) -> tuple[str, int, int, tuple[str, ...]]:
    return block.table, block.start, block.count, tuple(point.id for point in block.points)


def plan_reads(
    points: Iterable[ModbusPoint],
    *,
    max_gap: int,
    max_registers: int = 125,
    max_bits: int = 2000,
    barriers: frozenset[tuple[str, int]] = frozenset(),
    isolated: frozenset[str] = frozenset(),
) -> list[ReadBlock]:
    """Group points into the fewest read blocks, sorted by (table, start).

    Within a table, points sorted by address join the block before them when the unused
    addresses between the block's end and the point are at most ``max_gap`` (``max_gap *
    16`` for bit tables) and the block stays within ``max_registers`` (``max_bits``).
    A barrier ``(table, address)`` keeps any block of two or more points from starting
    below ``address`` and reaching ``address`` or above. These points are always read
    alone: ids in ``isolated``, points wider than the cap, points that straddle a barrier.
    Points with the same id are not expected (a device's ids are unique).
    """
    if max_gap < 0 or max_registers < 1 or max_bits < 1:
        raise ValueError("max_gap must be >= 0, max_registers and max_bits >= 1")
    by_table: dict[Table, list[ModbusPoint]] = {}
    for point in points:
        by_table.setdefault(point.table, []).append(point)
    blocks: list[ReadBlock] = []
    for table, members in by_table.items():
        bits = table in BIT_TABLES
        cuts = sorted({address for name, address in barriers if name == table})
        blocks += _plan_table(
            table,
            members,
            max_gap * 16 if bits else max_gap,
            max_bits if bits else max_registers,
            cuts,
            isolated,
        )
    blocks.sort(key=_block_order)
    return blocks


def split_block(block: ReadBlock) -> tuple[ReadBlock, ReadBlock]:
    """Split a refused block into its first ``n // 2`` points and the rest.

    Each half spans only its own points. Raises ValueError for a block of one point, which
    cannot be split (its point is unreadable: isolate it).
    """
    points = block.points
    if len(points) < 2:
        raise ValueError("a block of one point cannot be split")
    half = len(points) // 2
    return _block(block.table, points[:half]), _block(block.table, points[half:])


def barrier_between(left: ReadBlock, right: ReadBlock) -> tuple[str, int]:
    """The barrier to record when ``left`` and ``right`` (from :func:`split_block`) were
    both read but their union was refused: ``(table, right.start)``."""
    return right.table, right.start


def describe_block(block: ReadBlock) -> str:
    """One line for ``device-bridge check``, e.g.
    ``"read holding 0..9 (10 registers, fc 3): temperature, pressure"``."""
    unit = "bit" if block.is_bits else "register"
    plural = "" if block.count == 1 else "s"
    names = ", ".join(point.id for point in block.points)
    return (
        f"read {block.table} {block.start}..{block.end - 1} "
        f"({block.count} {unit}{plural}, fc {block.function_code}): {names}"
    )
