"""The classic mistakes in a device file, every one reported in one run with its place
and line; and ``check --connect`` against a simulator."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import boiler_state

from bridge.config import ConfigError, load_config
from simulators.modbus import ModbusSimulator
from simulators.modbus.tcp import ModbusTcpServer

MISTAKES = """\
devices:
  - id: meter
    driver: modbus-tcp
    connection: {host: 127.0.0.1, port: 502}
    points:
      - {id: voltage, address: "30001", type: float32}
      - {id: current, address: "30002", type: float32}
      - {id: energy, table: input, address: 30005, type: uint32}
      - {id: voltage, table: input, address: 100, type: int16, writable: true}
      - {id: status, address: "40001"}
      - {id: ready, address: "40001", type: bool, bit: 0}
      - {id: fault, address: "40001", type: bool, bit: 1}
      - {id: voltage_high_word, address: "30001", view_of: voltage}
      - {id: copy, address: "40001", type: bool, bit: 1}
  - id: meter
    driver: modbus-tcp
    connection: {host: 127.0.0.1, port: 502}
    points:
      - {id: x, table: coil, address: 0, type: int16}
      - {id: y, address: "30001", view_of: nothing}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devices.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_every_classic_mistake_is_reported_in_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_PORT", "fifty")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, MISTAKES))
    problems = caught.value.problems
    expected = [
        "environment variable BRIDGE_PORT: ",
        "devices[1].id (line 15): 'meter' is used by devices[0] too",
        "devices[0].points[3].id (line 9): 'voltage' is used by points[0] too",
        "devices[0].points[1].address (line 7): point 'current' (input registers 1..2) "
        "overlaps point 'voltage' (input registers 0..1); if both are meant, mark one with "
        "view_of: voltage",
        "devices[0].points[8].address (line 14): point 'copy' (holding register 0) overlaps "
        "point 'fault'",
        "devices[1].points[1].view_of (line 20): 'nothing' is not another point here",
        "devices[0].points[3] (line 9): an input register is read-only",
        "devices[1].points[0] (line 19): a coil holds one bit: type must be bool, not int16",
        "devices[0].points[2].address (line 8): warning: 30005 without quotes is protocol "
        'address 30005; if you mean the 1-based notation (input register 4), quote it: "30005"',
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)
    assert len(problems) == len(expected), problems
    rendered = caught.value.render()
    # the environment's mistake is not blamed on the file
    assert "\nenvironment variable BRIDGE_PORT" in "\n" + rendered
    assert f"{tmp_path / 'devices.yaml'}: environment" not in rendered


def test_bits_of_a_status_word_and_marked_views_are_valid(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """\
            devices:
              - id: meter
                driver: modbus-tcp
                connection: {host: 127.0.0.1}
                points:
                  - {id: status, address: "40001"}
                  - {id: ready, address: "40001", type: bool, bit: 0}
                  - {id: fault, address: "40001", type: bool, bit: 1}
                  - {id: power, address: "40011", type: float32}
                  - {id: power_hi, address: "40011", view_of: power}
                  - {id: power_lo, address: "40012", view_of: power}
                  - {id: power_int, address: "40011", type: int32, view_of: power}
            """,
        )
    )
    assert config.warnings == ()
    assert len(config.devices[0].points) == 7


def test_unquoted_notation_is_a_warning_that_check_prints(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        devices:
          - id: meter
            driver: modbus-tcp
            connection: {host: 127.0.0.1}
            points:
              - {id: energy, table: input, address: 30005, type: uint32}
              - {id: other, table: holding, address: 30005}
        """,
    )
    config = load_config(path)
    assert config.warnings == (
        f"{path}: devices[0].points[0].address (line 6): warning: 30005 without quotes is "
        "protocol address 30005; if you mean the 1-based notation (input register 4), quote "
        'it: "30005"',
    )
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "check", "-c", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0
    assert "warning: 30005 without quotes" in result.stderr
    assert "ok, 1 device(s)" in result.stdout


async def test_check_connect_says_which_devices_answer(tmp_path: Path) -> None:
    async with ModbusTcpServer(ModbusSimulator({1: boiler_state()})) as server:
        path = write(
            tmp_path,
            f"""\
            devices:
              - id: boiler
                driver: modbus-tcp
                connection: {{host: 127.0.0.1, port: {server.port}}}
                points:
                  - {{id: temperature, address: "40001", type: float32}}
              - id: ghost
                driver: modbus-tcp
                connection: {{host: 127.0.0.1, port: {server.port}}}
                unit: 9
                timeout: 0.1
                points:
                  - {{id: x, address: "40001"}}
            """,
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "check", "--connect", "-c", str(path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
    text = out.decode()
    assert process.returncode == 1, err.decode()
    assert f"boiler on tcp://127.0.0.1:{server.port}: answers: 1 of 1 point(s) read" in text
    assert "ghost on" in text
    assert "NO ANSWER: unit 9" in text
    assert "1 of 2 device(s) did not answer: ghost" in text
