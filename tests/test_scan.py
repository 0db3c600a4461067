"""``device-bridge scan`` on an RTU bus simulator over a pty: three units among 1..32, their
readable blocks, a drafted device file that passes ``check`` and reads good values, and the
refusal to scan a port another process has open."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_probe import cli

from bridge.config import load_config
from bridge.tools.scan import answer_hints
from simulators.modbus import ModbusDeviceState, ModbusSimulator
from simulators.modbus.rtu import ModbusRtuServer
from simulators.modbus.tcp import ModbusTcpServer
from simulators.modbus.values import Table

#: (table, first address, last address) a unit refuses to read
Unreadable = tuple[Table, int, int]

#: unit -> (holding values, unreadable ranges): three units among 1..32
UNITS: dict[int, tuple[list[tuple[int, int]], list[Unreadable]]] = {
    2: ([(0, 11), (1, 12), (20, 13)], [("holding", 5, 19), ("holding", 25, 65535)]),
    17: ([(0, 170)], [("holding", 10, 65535)]),
    31: ([(40, 310)], [("holding", 0, 39), ("holding", 45, 65535)]),
}
INPUT_UNREADABLE: Unreadable = ("input", 8, 65535)


def unit_state(values: list[tuple[int, int]], unreadable: list[Unreadable]) -> ModbusDeviceState:
    state = ModbusDeviceState()
    for address, value in values:
        state.set_value("holding", address, "uint16", value)
    state.set_value("input", 0, "uint16", 7)
    state.unreadable += [*unreadable, INPUT_UNREADABLE]
    return state


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[tuple[ModbusSimulator, ModbusRtuServer]]:
    sim = ModbusSimulator({unit: unit_state(*spec) for unit, spec in UNITS.items()})
    # no discrete inputs on any unit: the table answers "illegal function"
    sim.exception_for("discrete", 0, 65535, 1)
    server = ModbusRtuServer(sim, baudrate=19200, link_dir=str(tmp_path), name="ttyRS485")
    await server.start()
    try:
        yield sim, server
    finally:
        await server.stop()


# Absent units beside each present one; each costs a timeout, long enough that a loaded
# machine's late answer is not taken for silence.
SCAN = ("scan", "modbus-rtu", "--baudrate", "19200", "--units", "1-3,16-18,30-32",
        "--range", "0-49", "--timeout", "0.2")  # fmt: skip


async def test_scan_finds_the_three_units_and_their_readable_blocks(
    bus: tuple[ModbusSimulator, ModbusRtuServer], tmp_path: Path
) -> None:
    _, server = bus
    draft = tmp_path / "draft.yaml"
    status, out, err = await cli(
        *SCAN, "--port", server.path, "--json", "--write-config", str(draft)
    )
    assert status == 0, err
    report = json.loads(out)
    assert [u["unit"] for u in report["units"]] == [2, 17, 31]
    ranges = {
        u["unit"]: {
            t: [(r["start"], r["end"]) for r in v["ranges"]] for t, v in u["tables"].items()
        }
        for u in report["units"]
    }
    assert ranges[2] == {"holding": [(0, 4), (20, 24)], "input": [(0, 7)], "coil": [(0, 49)],
                         "discrete": []}  # fmt: skip
    assert ranges[17]["holding"] == [(0, 9)]
    assert ranges[31]["holding"] == [(40, 44)]
    assert "illegal function" in report["units"][0]["tables"]["discrete"]["note"]
    assert "set-up-time" in err

    # the draft passes check, and reads what the units hold
    config = load_config(draft)
    assert [d.id for d in config.devices] == ["unit-2", "unit-17", "unit-31"]
    status, out, err = await cli("check", "--connect", "-c", str(draft))
    assert status == 0, out + err
    assert "all 3 device(s) answered" in out
    status, out, _ = await cli("probe", "-c", str(draft), "unit-2", "--json")
    assert status == 0
    values = {p["id"]: p["value"] for p in json.loads(out)["points"]}
    assert values == {"holding-0": 11, "holding-20": 13, "input-0": 7, "coil-0": False}


async def test_scan_prints_a_summary_for_people(
    bus: tuple[ModbusSimulator, ModbusRtuServer],
) -> None:
    _, server = bus
    status, out, err = await cli(*SCAN, "--port", server.path, "--units", "15-20")
    assert status == 0, err
    assert out.splitlines()[:3] == [
        "1 unit(s) answer: 17",
        "unit 17: answered",
        "  holding   0..9",
    ]
    assert "readable blocks searched within 0..49 (--range to change)" in out
    assert "scan: unit 17 answers" in err  # plain progress when not on a terminal


async def test_scan_refuses_a_port_another_process_has_open(
    bus: tuple[ModbusSimulator, ModbusRtuServer], tmp_path: Path
) -> None:
    _, server = bus
    # another process holding the port, as a running bridge would
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import os, sys; os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); print('open', "
        "flush=True); sys.stdin.read()", server.path,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        assert await holder.stdout.readline() == b"open\n"
        status, out, err = await cli(*SCAN, "--port", server.path, "--units", "17")
        assert status == 1
        assert out == ""
        assert f"{server.path} is open in pid {holder.pid} (" in err
        assert "set-up-time command" in err
        assert "--force" in err
        device_file = tmp_path / "devices.yaml"
        device_file.write_text(
            "devices:\n  - {id: meter, driver: modbus-rtu, unit: 17, connection: "
            f"{{port: {server.path}, baudrate: 19200}}, points: [{{id: x, address: '40001'}}]}}\n"
        )
        status, _, err = await cli("probe", "-c", str(device_file), "meter")
        assert status == 1
        assert f"is open in pid {holder.pid} (" in err
        status, out, _ = await cli(*SCAN, "--port", server.path, "--units", "17", "--force")
        assert status == 0
        assert out.startswith("1 unit(s) answer: 17")
    finally:
        holder.stdin.close()
        await holder.wait()


async def scan_tcp(server: ModbusTcpServer, *args: str) -> tuple[int, str, str]:
    """``device-bridge scan modbus-tcp`` of a simulator, 0.2 s per request."""
    return await cli(
        "scan", "modbus-tcp", "--host", "127.0.0.1", "--port", str(server.port),
        "--timeout", "0.2", *args,
    )  # fmt: skip


async def test_over_tcp_a_gateways_10_and_11_mean_no_device_and_other_exceptions_one() -> None:
    sim = ModbusSimulator({unit: ModbusDeviceState() for unit in (1, 4, 5, 6)})
    sim.exception_for("holding", 0, 65535, 1, unit=4)  # no holding registers: still there
    sim.exception_for("holding", 0, 65535, 10, unit=5)  # gateway: path unavailable
    sim.exception_for("holding", 0, 65535, 11, unit=6)  # gateway: target did not answer
    async with ModbusTcpServer(sim) as server:
        status, out, err = await scan_tcp(server, "--units", "1-7", "--range", "0-9", "--json")
    assert status == 0, err
    units = {u["unit"]: u for u in json.loads(out)["units"]}
    assert sorted(units) == [1, 4]
    assert units[4]["answer"] == "answered exception 1 (illegal function)"
    assert units[4]["tables"]["holding"] == {
        "ranges": [],
        "note": "device refused: exception 1 (illegal function)",
    }
    assert units[4]["tables"]["input"]["ranges"] == [{"start": 0, "end": 9}]
    assert f"on 127.0.0.1:{server.port}" in err


async def test_a_lost_reply_is_asked_again_and_a_block_that_never_answers_is_named() -> None:
    sim = ModbusSimulator({1: ModbusDeviceState()})  # every address readable
    sim.lose_replies_for("input", 130, 130, 1, unit=1)  # one reply lost on a noisy line
    sim.lose_replies_for("holding", 130, 130, 2, unit=1)  # lost again when asked again
    async with ModbusTcpServer(sim) as server:
        status, out, err = await scan_tcp(server, "--units", "1", "--range", "0-299", "--json")
        assert status == 0, err
        tables = json.loads(out)["units"][0]["tables"]
        # the input read that lost its reply was asked again and answered
        assert tables["input"] == {"ranges": [{"start": 0, "end": 299}]}
        # the holding block asked twice in vain is a hole the note names, not a silent gap
        assert tables["holding"]["ranges"] == [
            {"start": 0, "end": 124}, {"start": 250, "end": 299},
        ]  # fmt: skip
        assert tables["holding"]["note"] == (
            f"unit 1 at 127.0.0.1:{server.port} did not answer within 0.2 s at 125..249, "
            "asked 2 times"
        )
        status, out, _ = await scan_tcp(server, "--units", "1", "--range", "0-299")
    assert status == 0
    assert "  holding   0..299" in out.splitlines()  # the rules were used up: all answers


async def test_a_unit_slower_than_the_timeout_gets_a_hint_to_scan_with_a_longer_one() -> None:
    sim = ModbusSimulator({1: ModbusDeviceState()})
    sim.delay = 0.3  # unit 1 answers 0.1 s after the scan gave up on it, while 2 is asked
    async with ModbusTcpServer(sim) as server:
        # the link stays open for another 0.3 s after that: time for a late reply to come
        status, out, err = await scan_tcp(server, "--units", "1-3", "--json")
    assert status == 1  # nobody answered in time
    assert json.loads(out)["driver"] == {"late_replies": 1, "unframed_bytes": 0}
    assert (
        "scan: 1 reply came after the request had timed out: a unit is slower than 0.2 s; "
        "scan again with a longer --timeout"
    ) in err.splitlines()


def test_the_hints_name_what_was_dropped_and_nothing_when_nothing_was() -> None:
    assert answer_hints({"late_replies": 0, "unframed_bytes": 0}, 0.1) == []
    assert answer_hints({}, 0.1) == []
    stray, foreign = answer_hints({"unrequested_bytes": 7, "other_unit_replies": 2}, 0.1)
    assert stray.startswith("7 byte(s) came while no request was out")
    assert "another master" in stray
    assert foreign.startswith("2 request(s) got only another unit's reply")
    assert "slower than 0.1 s" in foreign
    late, unframed = answer_hints({"late_replies": 2, "unframed_bytes": 9}, 0.5)
    assert late.startswith("2 replies came after")
    assert "slower than 0.5 s" in late
    assert unframed == "9 byte(s) came that are not Modbus TCP: is it a Modbus server?"


async def test_on_a_bus_a_slow_units_late_reply_is_not_taken_for_the_next_unit(
    tmp_path: Path,
) -> None:
    sim = ModbusSimulator({1: ModbusDeviceState()})
    sim.delay = 0.3  # unit 1's replies come while unit 2 is asked
    server = ModbusRtuServer(sim, baudrate=19200, link_dir=str(tmp_path), name="ttySLOW")
    await server.start()
    try:
        status, out, err = await cli(
            *SCAN[:4], "--units", "1-3", "--range", "0-9", "--timeout", "0.2",
            "--port", server.path, "--json",
        )  # fmt: skip
    finally:
        await server.stop()
    assert status == 1
    assert json.loads(out)["units"] == []  # no unit 2 made up of unit 1's reply
    # while unit 2 was asked (or, on a slow machine, after): counted either way, and told
    counts = json.loads(out)["driver"]
    assert counts["other_unit_replies"] + counts["unrequested_bytes"] >= 1
    assert any(
        line.startswith("scan: ") and "longer --timeout" in line for line in err.splitlines()
    )
