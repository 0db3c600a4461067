"""The outbox on its own: durable order, acknowledgements, limits, reopening."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.north.outbox import Outbox


def gap(stream: str, since: int, until: int, frames: int) -> tuple[str, bytes]:
    body = {"type": "gap", "stream": stream, "since": since, "until": until, "frames": frames}
    return "gaps", json.dumps(body).encode()


def rows(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [i for (i,) in db.execute("SELECT id FROM outbox ORDER BY id")]


async def test_frames_survive_reopening_in_order_and_leave_only_when_acknowledged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.sqlite"
    outbox = Outbox(str(path), "json", 1 << 20, 3600, gap)
    await outbox.open()
    for seq in range(1, 11):
        outbox.append("b/dev", "t", b"frame %d" % seq, seq, seq)
    first = await outbox.read(1, outbox.generation)
    assert [m.payload for m in first] == [b"frame %d" % i for i in range(1, 11)]
    outbox.acked(2, outbox.generation)  # out of order: nothing may leave before 1 has
    assert outbox.depth == 10
    outbox.acked(1, outbox.generation)
    assert outbox.depth == 8
    await eventually(lambda: rows(path) == list(range(3, 11)))
    await outbox.close()
    again = Outbox(str(path), "json", 1 << 20, 3600, gap)
    await again.open()
    assert again.depth == 8
    assert again.next_id == 11
    assert [m.payload for m in await again.read(0, again.generation)] == [
        b"frame %d" % i for i in range(3, 11)
    ]
    await again.close()


async def test_frames_older_than_the_age_limit_become_one_gap_per_stream(tmp_path: Path) -> None:
    outbox = Outbox(str(tmp_path / "o.sqlite"), "json", 1 << 20, 0.05, gap)
    await outbox.open()
    outbox.append("b/a", "a", b"a1", 1, 2)
    outbox.append("b/b", "b", b"b1", 3, 3)
    outbox.append("b/a", "a", b"a2", 4, 5)
    seq = 6

    def one_more_then_dropped() -> bool:
        nonlocal seq
        outbox.append("b/a", "a", b"later", seq, seq)
        seq += 1
        return outbox.dropped_frames >= 3

    await eventually(one_more_then_dropped)
    messages = await outbox.read(0, outbox.generation)
    gaps = [json.loads(m.payload) for m in messages if m.topic == "gaps"]
    by_stream = {g["stream"]: g for g in gaps}
    assert by_stream["b/a"]["since"] == 0
    assert by_stream["b/a"]["until"] >= 5
    assert by_stream["b/b"] == {"type": "gap", "stream": "b/b", "since": 2, "until": 3, "frames": 1}
    assert outbox.dropped_readings >= 5
    # Everything left is in id order, the gaps where the lost frames were.
    ids = [m.id for m in messages]
    assert ids == sorted(ids)
    await outbox.close()


async def test_another_formats_frames_are_dropped_and_counted_on_opening(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    outbox = Outbox(str(path), "json", 1 << 20, 3600, gap)
    await outbox.open()
    outbox.append("b/a", "a", b"x", 1, 1)
    await outbox.close()
    other = Outbox(str(path), "sparkplug", 1 << 20, 3600, gap)
    await other.open()
    assert other.depth == 0
    assert other.dropped_frames == 1
    await other.close()


@settings(max_examples=25, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.sampled_from(["b/a", "b/b", "c/a"]),
                      st.integers(1, 400)),
            st.tuples(st.just("ack"), st.integers(0, 5), st.just(0)),
        ),
        max_size=60,
    ),
    limit=st.integers(4096, 12000),
)  # fmt: skip
def test_any_appends_and_acks_keep_the_index_and_the_file_in_agreement(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, Any, int]], limit: int
) -> None:
    path = tmp_path_factory.mktemp("outbox") / "o.sqlite"

    async def run() -> None:
        outbox = Outbox(str(path), "json", limit, 3600, gap)
        await outbox.open()
        seq = 0
        for kind, arg, size in steps:
            if kind == "append":
                seq += 1
                outbox.append(arg, "t", b"x" * size, seq, seq)
            elif outbox.depth:
                outbox.acked(outbox.first_id + arg, outbox.generation)
        kept = await outbox.read(0, outbox.generation) if outbox.depth else []
        ids = [m.id for m in kept]
        assert ids == sorted(ids)
        assert len(ids) == outbox.depth
        assert outbox.bytes == sum(len(m.payload) + len(m.topic) for m in kept)
        # Over the limit only by the gap frames that replaced what was dropped.
        gaps = sum(m.topic == "gaps" for m in kept)
        assert outbox.bytes <= limit + 400 + 200 * gaps
        await outbox.close()
        again = Outbox(str(path), "json", limit, 3600, gap)
        await again.open()
        reopened = await again.read(0, again.generation) if again.depth else []
        assert [(m.id, m.payload) for m in reopened] == [(m.id, m.payload) for m in kept]
        await again.close()

    asyncio.run(run())
