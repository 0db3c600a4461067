"""``device-bridge probe`` against a simulator whose register map has one right layout per
value, and the layout table it is built on (property-tested against the codec)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.cli import main
from drivers.modbus.codec import encode_value
from drivers.modbus.config import ModbusPoint
from drivers.modbus.layouts import decodings
from simulators.modbus import ModbusDeviceState, ModbusSimulator
from simulators.modbus.tcp import ModbusTcpServer
from simulators.modbus.values import Order, ValueType

ORDERS: tuple[Order, ...] = ("big", "little")
#: (holding address, type, value, word order): each value stored under one word order
MAP: list[tuple[int, ValueType, float | int, Order]] = [
    (0, "float32", 231.37, "big"),
    (2, "float32", 231.37, "little"),
    (4, "int32", -1234567, "big"),
    (6, "int32", -1234567, "little"),
    (8, "uint32", 3000000123, "big"),
    (10, "uint32", 3000000123, "little"),
]


def meter_state() -> ModbusDeviceState:
    state = ModbusDeviceState("meter")
    for address, kind, value, word_order in MAP:
        state.set_value("holding", address, kind, value, word_order=word_order)
    state.set_value("coil", 4, "bool", True)
    return state


async def cli(*args: str) -> tuple[int, str, str]:
    """``device-bridge ARGS`` in this process (in a thread: it runs its own event loop)."""
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(list(args))

    status = await asyncio.to_thread(call)
    return status, out.getvalue(), err.getvalue()


async def run(*args: str) -> tuple[int, str, str]:
    """``device-bridge ARGS`` as a process of its own: exit status and no traceback."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def row(report: dict[str, Any], kind: str, byte_order: str, word_order: str) -> list[Any]:
    return next(
        d["values"] for d in report["decodings"]
        if (d["type"], d["byte_order"], d["word_order"]) == (kind, byte_order, word_order)
    )  # fmt: skip


@pytest.fixture
async def meter() -> Any:
    async with ModbusTcpServer(ModbusSimulator({1: meter_state()})) as server:
        yield server.port


async def test_probe_shows_each_value_right_under_its_own_word_order_only(meter: int) -> None:
    for address, kind, value, word_order in MAP:
        status, out, err = await cli(
            "probe", "modbus-tcp", "--host", "127.0.0.1", "--port", str(meter),
            "--address", f"4{address + 1:04d}", "--count", "2", "--json",
        )  # fmt: skip
        assert status == 0, err
        report = json.loads(out)
        assert report["registers"][0]["notation"] == f"4{address + 1:04d}"
        assert row(report, kind, "big", word_order) == [value]
        wrong = "little" if word_order == "big" else "big"
        assert row(report, kind, "big", wrong) != [value]
        assert row(report, kind, "little", word_order) != [value]


async def test_probe_prints_a_table_for_people_and_bits(meter: int) -> None:
    status, out, _ = await cli(
        "probe", "modbus-tcp", "--host", "127.0.0.1", "--port", str(meter),
        "--address", "40003", "--count", "2",
    )  # fmt: skip
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "unit 1, holding 2..3 (40003..40004):"
    assert any(
        line.split()[:3] == ["float32", "CDAB", "big"] and "231.37" in line for line in lines
    )
    status, out, _ = await cli(
        "probe", "modbus-tcp", "--host", "127.0.0.1", "--port", str(meter),
        "--table", "coil", "--address", "3", "--count", "2", "--json",
    )  # fmt: skip
    assert status == 0
    assert [b["value"] for b in json.loads(out)["bits"]] == [False, True]


async def test_probe_of_a_configured_device_shows_the_other_layouts(
    meter: int, tmp_path: Path
) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(textwrap.dedent(f"""\
        devices:
          - id: meter
            driver: modbus-tcp
            connection: {{host: 127.0.0.1, port: {meter}}}
            points:
              - {{id: voltage, address: "40001", type: float32, word_order: little}}
              - {{id: energy, address: "40011", type: uint32, word_order: little}}
        """))  # fmt: skip
    status, out, err = await cli("probe", "-c", str(path), "meter", "--json")
    assert status == 0, err
    points = {p["id"]: p for p in json.loads(out)["points"]}
    # the file's layout is wrong for voltage: the right one is among the others
    assert points["voltage"]["layout"] == "CDAB"
    assert points["voltage"]["value"] != 231.37
    assert points["voltage"]["other_layouts"]["ABCD"] == 231.37
    assert points["energy"]["value"] == 3000000123
    assert "CDAB" not in points["energy"]["other_layouts"]


async def test_probe_says_what_went_wrong_and_exits_1(meter: int) -> None:
    status, out, err = await run(
        "probe", "modbus-tcp", "--host", "127.0.0.1", "--port", str(meter), "--unit", "7",
        "--address", "40001", "--timeout", "0.1", "--json",
    )  # fmt: skip
    assert status == 1
    assert json.loads(out) == {"error": f"unit 7 at 127.0.0.1:{meter} did not answer within 0.1 s"}
    assert "Traceback" not in err
    status, _, err = await run("probe", "modbus-tcp", "--host", "127.0.0.1", "--port", "1",
                               "--address", "40001")  # fmt: skip
    assert status == 1
    assert "cannot connect to 127.0.0.1:1" in err
    status, _, err = await run("probe", "modbus-tcp", "--host", "127.0.0.1", "--address", "12")
    assert status == 2
    assert "give --table, or notation such as 40001" in err


@given(
    kind=st.sampled_from(["float32", "int32", "uint32"]),
    byte_order=st.sampled_from(ORDERS),
    word_order=st.sampled_from(ORDERS),
    number=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_decodings_find_a_value_under_the_layout_it_was_written_in(
    kind: str, byte_order: Order, word_order: Order, number: int
) -> None:
    value: float | int = float(number % 100000) / 4 if kind == "float32" else number
    point = ModbusPoint.model_validate(
        {"id": "p", "table": "holding", "address": 0, "type": kind,
         "byte_order": byte_order, "word_order": word_order}
    )  # fmt: skip
    registers = encode_value(point, value)
    assert isinstance(registers, list)
    found = {(d.type, d.byte_order, d.word_order): d.values for d in decodings(registers)}
    assert found[(kind, byte_order, word_order)] == (value,)
