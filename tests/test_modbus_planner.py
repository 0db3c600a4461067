"""Request planning: merging rules, barriers and isolation, and learning from refusals."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from random import Random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.config import BIT_TABLES, ModbusPoint
from drivers.modbus.planner import (
    ReadBlock,
    barrier_between,
    describe_block,
    plan_reads,
    split_block,
)


def pt(id: str, table: str, address: int, type: str | None = None, **fields: Any) -> ModbusPoint:
    entry: dict[str, Any] = {"id": id, "table": table, "address": address, **fields}
    if type is not None:
        entry["type"] = type
    return ModbusPoint.model_validate(entry)


def holding(*addresses: int) -> list[ModbusPoint]:
    return [pt(f"h{a}", "holding", a) for a in addresses]


def shape(blocks: Sequence[ReadBlock]) -> list[tuple[str, int, int, list[str]]]:
    return [(b.table, b.start, b.count, [p.id for p in b.points]) for b in blocks]


def spans(blocks: Sequence[ReadBlock]) -> list[tuple[str, int, int]]:
    return [(b.table, b.start, b.count) for b in blocks]


# ---------------------------------------------------------------- merging rules


def test_gap_up_to_max_gap_merges() -> None:
    assert spans(plan_reads(holding(0, 11), max_gap=10)) == [("holding", 0, 12)]
    assert spans(plan_reads(holding(0, 12), max_gap=10)) == [("holding", 0, 1), ("holding", 12, 1)]


def test_gap_zero_merges_only_adjacent_points() -> None:
    blocks = plan_reads(holding(0, 1, 2, 4), max_gap=0)
    assert spans(blocks) == [("holding", 0, 3), ("holding", 4, 1)]


def test_gap_is_counted_from_the_end_of_wide_points() -> None:
    points = [pt("f", "holding", 0, "float64"), pt("u", "holding", 6)]
    assert spans(plan_reads(points, max_gap=2)) == [("holding", 0, 7)]
    assert len(plan_reads(points, max_gap=1)) == 2


def test_register_cap() -> None:
    assert spans(plan_reads(holding(*range(125)), max_gap=0)) == [("holding", 0, 125)]
    blocks = plan_reads(holding(*range(126)), max_gap=0)
    assert spans(blocks) == [("holding", 0, 125), ("holding", 125, 1)]
    points = [pt("a", "holding", 0), pt("b", "holding", 123, "float32")]
    assert spans(plan_reads(points, max_gap=124)) == [("holding", 0, 125)]
    points = [pt("a", "holding", 0), pt("b", "holding", 124, "float32")]
    assert len(plan_reads(points, max_gap=124)) == 2
    assert len(plan_reads(holding(*range(20)), max_gap=10, max_registers=10)) == 2


def test_bit_tables_use_sixteen_times_the_gap_and_the_bit_cap() -> None:
    coils = [pt("a", "coil", 0), pt("b", "coil", 161)]
    assert spans(plan_reads(coils, max_gap=10)) == [("coil", 0, 162)]
    coils = [pt("a", "coil", 0), pt("b", "coil", 162)]
    assert len(plan_reads(coils, max_gap=10)) == 2
    discrete = [pt(f"d{a}", "discrete", a) for a in range(0, 2001, 100)]
    blocks = plan_reads(discrete, max_gap=124)
    assert spans(blocks) == [("discrete", 0, 1901), ("discrete", 2000, 1)]
    assert len(plan_reads(discrete, max_gap=124, max_bits=2001)) == 1
    # the register cap does not apply to bits, nor the bit cap to registers
    assert len(plan_reads([pt("a", "coil", 0), pt("b", "coil", 200)], max_gap=20)) == 1


def test_tables_are_never_merged_and_come_sorted() -> None:
    points = [
        pt("i", "input", 0),
        pt("h", "holding", 0),
        pt("d", "discrete", 0),
        pt("c", "coil", 0),
        pt("h2", "holding", 1),
    ]
    assert shape(plan_reads(points, max_gap=10)) == [
        ("coil", 0, 1, ["c"]),
        ("discrete", 0, 1, ["d"]),
        ("holding", 0, 2, ["h", "h2"]),
        ("input", 0, 1, ["i"]),
    ]


def test_overlapping_points_share_registers() -> None:
    points = [
        pt("status", "holding", 4),
        pt("alarm", "holding", 4, "bool", bit=3),
        pt("ready", "holding", 4, "bool", bit=0),
        pt("level", "holding", 0, "float32"),
        pt("low", "holding", 1),
        pt("name", "holding", 0, "string", length=4),
    ]
    assert shape(plan_reads(points, max_gap=0)) == [
        ("holding", 0, 5, ["level", "name", "low", "alarm", "ready", "status"])
    ]


def test_function_codes_and_descriptions() -> None:
    points = [
        pt("temperature", "holding", 0, "float32"),
        pt("pressure", "holding", 5),
        pt("alarm", "holding", 9, "bool", bit=3),
        pt("pump", "coil", 7),
        pt("door", "discrete", 2),
        pt("flow", "input", 3),
    ]
    blocks = plan_reads(points, max_gap=10)
    assert [b.function_code for b in blocks] == [1, 2, 3, 4]
    assert [describe_block(b) for b in blocks] == [
        "read coil 7..7 (1 bit, fc 1): pump",
        "read discrete 2..2 (1 bit, fc 2): door",
        "read holding 0..9 (10 registers, fc 3): temperature, pressure, alarm",
        "read input 3..3 (1 register, fc 4): flow",
    ]


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_gap"):
        plan_reads(holding(0), max_gap=-1)
    with pytest.raises(ValueError, match="max_registers"):
        plan_reads(holding(0), max_gap=0, max_registers=0)


# ---------------------------------------------------------------- barriers and isolation


def test_barrier_ends_a_block_before_its_address() -> None:
    points = holding(0, 1, 2, 3, 4, 5)
    barriers = frozenset({("holding", 3)})
    assert spans(plan_reads(points, max_gap=10, barriers=barriers)) == [
        ("holding", 0, 3),
        ("holding", 3, 3),
    ]


def test_barrier_applies_to_its_table_only_and_not_at_a_block_start() -> None:
    points = holding(0, 1, 2, 3)
    assert len(plan_reads(points, max_gap=10, barriers=frozenset({("input", 2)}))) == 1
    assert len(plan_reads(points, max_gap=10, barriers=frozenset({("holding", 0)}))) == 1
    assert len(plan_reads(points, max_gap=10, barriers=frozenset({("holding", 4)}))) == 1


def test_point_straddling_a_barrier_is_read_alone() -> None:
    points = [*holding(0, 1), pt("f", "holding", 2, "float32"), *holding(4, 5)]
    blocks = plan_reads(points, max_gap=10, barriers=frozenset({("holding", 3)}))
    # the float cannot share a block, but the points on each side of it still merge
    assert shape(blocks) == [
        ("holding", 0, 2, ["h0", "h1"]),
        ("holding", 2, 2, ["f"]),
        ("holding", 4, 2, ["h4", "h5"]),
    ]


def test_isolated_point_is_read_alone_and_its_neighbours_merge() -> None:
    blocks = plan_reads(holding(0, 1, 2, 3, 4), max_gap=10, isolated=frozenset({"h2"}))
    assert shape(blocks) == [
        ("holding", 0, 5, ["h0", "h1", "h3", "h4"]),
        ("holding", 2, 1, ["h2"]),
    ]


def test_point_wider_than_the_cap_is_read_alone() -> None:
    points = [
        pt("a", "holding", 0),
        pt("s", "holding", 1, "string", length=20),
        pt("b", "holding", 2),
    ]
    assert shape(plan_reads(points, max_gap=10, max_registers=10)) == [
        ("holding", 0, 3, ["a", "b"]),
        ("holding", 1, 20, ["s"]),
    ]


# ---------------------------------------------------------------- properties


@dataclass(frozen=True)
class Case:
    points: list[ModbusPoint]
    max_gap: int
    cap: int
    barriers: frozenset[tuple[str, int]]
    isolated: frozenset[str]


LAYOUTS: list[dict[str, Any]] = [
    {"type": "uint16"},
    {"type": "float32"},
    {"type": "float64"},
    {"type": "bool", "bit": 1},
    {"type": "string", "length": 3},
    {"type": "string", "length": 6},
]


@st.composite
def cases(draw: st.DrawFn, max_points: int = 7, tables: Sequence[str] = ("holding",)) -> Case:
    count = draw(st.integers(1, max_points))
    points = []
    for index in range(count):
        table = draw(st.sampled_from(tables))
        layout = draw(st.sampled_from(LAYOUTS)) if table not in BIT_TABLES else {}
        points.append(pt(f"p{index}", table, draw(st.integers(0, 30)), **layout))
    cuts = draw(st.sets(st.integers(0, 40), max_size=3))
    ids = [p.id for p in points]
    return Case(
        points=points,
        max_gap=draw(st.integers(0, 4)),
        cap=draw(st.integers(1, 12)),
        barriers=frozenset((t, c) for t in tables for c in cuts),
        isolated=frozenset(draw(st.sets(st.sampled_from(ids), max_size=2))),
    )


def plan(case: Case) -> list[ReadBlock]:
    return plan_reads(
        case.points,
        max_gap=case.max_gap,
        max_registers=case.cap,
        max_bits=case.cap,
        barriers=case.barriers,
        isolated=case.isolated,
    )


def feasible(
    points: Sequence[ModbusPoint],
    case: Case,
    unreadable: frozenset[int] = frozenset(),
) -> bool:
    """Whether these points may be one block: the planner's rules, written independently."""
    if len(points) == 1:
        return True
    if len({p.table for p in points}) > 1 or any(p.id in case.isolated for p in points):
        return False
    table = points[0].table
    limit = case.max_gap * (16 if table in BIT_TABLES else 1)
    ordered = sorted(points, key=lambda p: p.address)
    start = ordered[0].address
    end = max(p.address + p.width for p in ordered)
    if end - start > case.cap:
        return False
    if any(t == table and start < b < end for t, b in case.barriers):
        return False
    if any(start <= u < end for u in unreadable):
        return False
    reach = ordered[0].address + ordered[0].width
    for p in ordered[1:]:
        if p.address - reach > limit:
            return False
        reach = max(reach, p.address + p.width)
    return True


def partitions(items: list[ModbusPoint]) -> Iterator[list[list[ModbusPoint]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in partitions(rest):
        for index in range(len(partition)):
            yield [*partition[:index], [first, *partition[index]], *partition[index + 1 :]]
        yield [[first], *partition]


def fewest_blocks(case: Case, unreadable: frozenset[int] = frozenset()) -> int:
    """The true minimum, by trying every way to group the points."""
    return min(
        len(partition)
        for partition in partitions(case.points)
        if all(feasible(group, case, unreadable) for group in partition)
    )


@settings(max_examples=300, deadline=None)
@given(cases(tables=("holding", "coil")))
def test_plan_is_valid_and_minimal(case: Case) -> None:
    blocks = plan(case)
    assert sorted(p.id for b in blocks for p in b.points) == sorted(p.id for p in case.points)
    for block in blocks:
        assert all(p.table == block.table for p in block.points)
        assert block.start == min(p.address for p in block.points)
        assert block.end == max(p.address + p.width for p in block.points)
        assert list(block.points) == sorted(block.points, key=lambda p: (p.address, p.id))
        assert feasible(block.points, case)
    assert [(b.table, b.start) for b in blocks] == sorted((b.table, b.start) for b in blocks)
    assert len(blocks) == fewest_blocks(case)


@given(cases(max_points=12, tables=("holding", "input", "coil")), st.randoms())
def test_plan_does_not_depend_on_point_order(case: Case, random: Random) -> None:
    shuffled = list(case.points)
    random.shuffle(shuffled)
    again = plan_reads(
        shuffled,
        max_gap=case.max_gap,
        max_registers=case.cap,
        max_bits=case.cap,
        barriers=case.barriers,
        isolated=case.isolated,
    )
    assert shape(again) == shape(plan(case))


def test_split_block_halves_by_count_and_tightens() -> None:
    (block,) = plan_reads(holding(0, 2, 9, 20, 24), max_gap=10)
    left, right = split_block(block)
    assert shape([left, right]) == [
        ("holding", 0, 3, ["h0", "h2"]),
        ("holding", 9, 16, ["h9", "h20", "h24"]),
    ]
    assert barrier_between(left, right) == ("holding", 9)
    with pytest.raises(ValueError, match="one point"):
        split_block(ReadBlock("holding", 0, 1, left.points[:1]))


# ---------------------------------------------------------------- learning from refusals


@dataclass
class Learnt:
    blocks: list[ReadBlock]
    barriers: frozenset[tuple[str, int]]
    isolated: frozenset[str]
    polls: int


def poll(
    block: ReadBlock,
    unreadable: frozenset[tuple[str, int]],
    barriers: set[tuple[str, int]],
    isolated: set[str],
) -> bool:
    """The driver's part: read ``block`` from a device that refuses (exception 2) any read
    covering an address in ``unreadable``, splitting refused blocks and recording what it
    learns. True if the device answered this request itself (not only its halves)."""
    if not any((block.table, a) in unreadable for a in range(block.start, block.end)):
        return True
    if len(block.points) == 1:
        isolated.add(block.points[0].id)
        return False
    left, right = split_block(block)
    left_answered = poll(left, unreadable, barriers, isolated)
    right_answered = poll(right, unreadable, barriers, isolated)
    if left_answered and right_answered:
        barriers.add(barrier_between(left, right))
    return False


def learn(
    points: Sequence[ModbusPoint],
    unreadable: frozenset[tuple[str, int]],
    *,
    max_gap: int = 10,
    max_registers: int = 125,
    max_bits: int = 2000,
) -> Learnt:
    """Poll a simulated device, learning as the planner's docstring says and re-planning
    after each poll, until a poll learns nothing."""
    barriers: frozenset[tuple[str, int]] = frozenset()
    isolated: frozenset[str] = frozenset()
    for polls in range(1, 50):
        blocks = plan_reads(
            points,
            max_gap=max_gap,
            max_registers=max_registers,
            max_bits=max_bits,
            barriers=barriers,
            isolated=isolated,
        )
        new_barriers, new_isolated = set(barriers), set(isolated)
        for block in blocks:
            poll(block, unreadable, new_barriers, new_isolated)
        if new_barriers == barriers and new_isolated == isolated:
            return Learnt(blocks, barriers, isolated, polls)
        barriers, isolated = frozenset(new_barriers), frozenset(new_isolated)
    raise AssertionError("learning did not reach a fixed point")


def device_points() -> list[ModbusPoint]:
    """15 points of every type, in every table, with two groups of holding registers."""
    return [
        pt("temperature", "holding", 0, "float32"),
        pt("setpoint", "holding", 2, "float32", word_order="little"),
        pt("status", "holding", 4),
        pt("alarm", "holding", 4, "bool", bit=3),
        pt("energy", "holding", 5, "uint64"),
        pt("runtime", "holding", 9, "int64"),
        pt("model", "holding", 18, "string", length=4),
        pt("serial", "holding", 22, "int32"),
        pt("trim", "holding", 24, "int16"),
        pt("total", "holding", 25, "float64", byte_order="little"),
        pt("pressure", "input", 10, "int16", scale=0.01),
        pt("flow", "input", 12, "uint32"),
        pt("pump", "coil", 0),
        pt("valve", "coil", 5),
        pt("door", "discrete", 3),
    ]


def test_device_without_holes_is_read_in_one_block_per_table() -> None:
    learnt = learn(device_points(), frozenset())
    assert learnt.polls == 1
    assert spans(learnt.blocks) == [
        ("coil", 0, 6),
        ("discrete", 3, 1),
        ("holding", 0, 29),
        ("input", 10, 4),
    ]


def test_learning_converges_to_one_block_per_readable_group() -> None:
    hole = frozenset(("holding", a) for a in range(13, 17))
    learnt = learn(device_points(), hole)
    assert shape(learnt.blocks) == [
        ("coil", 0, 6, ["pump", "valve"]),
        ("discrete", 3, 1, ["door"]),
        ("holding", 0, 13, ["temperature", "setpoint", "alarm", "status", "energy", "runtime"]),
        ("holding", 18, 11, ["model", "serial", "trim", "total"]),
        ("input", 10, 4, ["pressure", "flow"]),
    ]
    assert learnt.barriers == {("holding", 18)}
    assert learnt.isolated == frozenset()
    assert learnt.polls == 2


def test_single_unreadable_point_ends_isolated_and_its_neighbours_merged() -> None:
    points = holding(0, 1, 2, 3, 4, 5, 6)
    learnt = learn(points, frozenset({("holding", 3)}))
    assert shape(learnt.blocks) == [
        ("holding", 0, 3, ["h0", "h1", "h2"]),
        ("holding", 3, 1, ["h3"]),
        ("holding", 4, 3, ["h4", "h5", "h6"]),
    ]
    assert learnt.isolated == {"h3"}
    assert learnt.barriers == {("holding", 4)}


@settings(max_examples=200, deadline=None)
@given(cases(tables=("holding",)), st.sets(st.integers(0, 40), max_size=4))
def test_learning_reaches_the_fewest_requests(case: Case, holes: set[int]) -> None:
    unreadable = frozenset(("holding", a) for a in holes)
    learnt = learn(case.points, unreadable, max_gap=case.max_gap, max_registers=case.cap)
    truth = Case(case.points, case.max_gap, case.cap, frozenset(), frozenset())
    for block in learnt.blocks:
        # every request is answered, except the one of a point that is itself unreadable
        assert feasible(block.points, truth, frozenset(holes))
    assert {p.id for b in learnt.blocks for p in b.points} == {p.id for p in case.points}
    for point in case.points:
        covers_hole = any(a in holes for a in range(point.address, point.address + point.width))
        assert (point.id in learnt.isolated) == covers_hole
    assert len(learnt.blocks) == fewest_blocks(truth, frozenset(holes))
