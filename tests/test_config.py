"""The device file and settings: what is accepted, and how every problem is reported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bridge.config import ConfigError, load_config, parse_config
from drivers.modbus.config import ModbusPoint, parse_register_notation

DEVICE_FILE_EXAMPLE = """\
server: {port: 5001}
devices:
  - id: boiler
    driver: modbus-tcp
    connection: {host: 127.0.0.1, port: 5020}
    unit: 1
    interval: 1.0
    timeout: 1.0
    points:
      - {id: temperature, table: holding, address: 0, type: float32, unit: "°C"}
      - {id: pressure, table: input, address: 10, type: int16, scale: 0.01, unit: bar}
      - {id: pump_on, table: coil, address: 0, type: bool, writable: true}
      - {id: setpoint, table: holding, address: 20, type: float32, word_order: little, writable: true, min: 0, max: 90}
      - {id: alarm, table: holding, address: 30, type: bool, bit: 3}
      - {id: model, table: holding, address: 40, type: string, length: 8}
  - id: chiller
    driver: modbus-tcp
    connection: {host: 127.0.0.1, port: 5020}
    unit: 2
    points:
      - {id: temperature, address: "30011", type: int16, scale: 0.1}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "devices.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value.problems


def test_the_device_file_example_is_accepted_and_devices_on_one_endpoint_share_a_link(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, DEVICE_FILE_EXAMPLE))
    assert [d.id for d in config.devices] == ["boiler", "chiller"]
    assert config.settings.port == 5001
    assert len(config.links) == 1
    assert [d.id for d in config.links[0].devices] == ["boiler", "chiller"]


@pytest.mark.parametrize(
    ("text", "table", "address"),
    [("40001", "holding", 0), ("30011", "input", 10), ("00001", "coil", 0),
     ("10002", "discrete", 1), ("465536", "holding", 65535), ("400100", "holding", 99)],
)  # fmt: skip
def test_register_notation(text: str, table: str, address: int) -> None:
    assert parse_register_notation(text) == (table, address)


def test_register_notation_fills_in_the_table() -> None:
    point = ModbusPoint.model_validate({"id": "t", "address": "30011", "type": "int16"})
    assert (point.table, point.address) == ("input", 10)


def test_every_problem_is_reported_at_once_with_its_place(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        devices:
          - id: Boiler
            driver: modbus-tcp
            connection: {host: 127.0.0.1, port: 5020}
            points:
              - {id: a, table: holding, address: 0, type: float33}
              - {id: b, address: "40001", table: input}
              - {id: c, table: coil, address: 1, type: int16}
              - {id: d, table: holding, address: 3, type: string}
              - {id: e, table: holding, address: 4, colour: red}
          - id: pump
            driver: modbus-foo
          - id: meter
            driver: modbus-tcp
            connection: {host: 127.0.0.1, port: 99999}
            interval: -1
            points: []
        """,
    )
    text = "\n".join(problems)
    assert "devices[0].id (line 2)" in text
    assert "devices[0].points[0].type (line 6)" in text
    assert "devices[0].points[1] (line 7): address '40001' is in table 'holding'" in text
    assert "devices[0].points[2] (line 8): a coil holds one bit" in text
    assert "devices[0].points[3] (line 9): a string needs length" in text
    assert "devices[0].points[4].colour (line 10): unknown key" in text
    assert "devices[1].driver (line 12): 'modbus-foo' is not an installed driver" in text
    assert "modbus-tcp" in text  # the message names the drivers there are
    assert "devices[2].connection.port" in text
    assert "devices[2].interval" in text
    assert "devices[2].points" in text


def test_duplicate_ids_are_errors(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        devices:
          - {id: a, driver: modbus-tcp, connection: {host: h}, points: [{id: x, table: coil, address: 0}, {id: x, table: coil, address: 1}]}
          - {id: a, driver: modbus-tcp, connection: {host: h}, points: [{id: x, table: coil, address: 0}]}
        """,
    )
    assert any(
        p.startswith("devices[0].points[1].id") and "used by points[0]" in p for p in problems
    )
    assert any(p.startswith("devices[1].id") and "used by devices[0]" in p for p in problems)


def test_missing_file_and_bad_yaml_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert caught.value.render() == f"{tmp_path / 'nope.yaml'}: no such file"
    problems = problems_of(tmp_path, "devices:\n  - id: [unclosed\n")
    assert problems[0].startswith("line 3, column 1: not valid YAML")


def test_unknown_top_level_and_server_keys(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        "devicez: []\nserver: {prot: 1}\n",
    )
    assert any(p.startswith("devicez") for p in problems)
    assert any(p.startswith("server.prot") for p in problems)
    assert any(p.startswith("devices") and "missing" in p for p in problems)


def test_environment_wins_over_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_PORT", "6001")
    monkeypatch.setenv("BRIDGE_ROOT_PATH", "/resource/")
    config = parse_config(
        {"server": {"port": 5001, "history": 5},
         "devices": [{"id": "a", "driver": "modbus-tcp", "connection": {"host": "h"},
                      "points": [{"id": "x", "table": "coil", "address": 0}]}]}
    )  # fmt: skip
    assert config.settings.port == 6001
    assert config.settings.root_path == "/resource"
    assert config.settings.history == 5


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=60
    )


def test_check_prints_the_plan(tmp_path: Path) -> None:
    result = run_cli("check", "-c", str(write(tmp_path, DEVICE_FILE_EXAMPLE)))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "2 device(s) on 1 link(s)" in out
    assert "tcp://127.0.0.1:5020 (modbus-tcp): boiler, chiller" in out
    # holding 0..1 is too far from 20 to merge (gap 18 > max_gap 10); 20..47 merges
    assert "boiler (modbus-tcp, every 1 s, timeout 1 s): 6 point(s), 4 request(s) per poll" in out
    assert "read coil 0..0 (1 bit, fc 1): pump_on" in out
    assert "read holding 0..1 (2 registers, fc 3): temperature" in out
    assert "read holding 20..47 (28 registers, fc 3): setpoint, alarm, model" in out
    assert "read input 10..10 (1 register, fc 4): pressure" in out
    assert "chiller (modbus-tcp, every 1 s, timeout 1 s): 1 point(s), 1 request(s) per poll" in out


def test_bad_file_exits_2_naming_the_place_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE_FILE_EXAMPLE.replace("type: int16, scale: 0.01", "type: int17"))
    for command in ("check", "run"):
        result = run_cli(command, "-c", str(path))
        assert result.returncode == 2
        assert f"{path}: devices[0].points[1].type (line 11)" in result.stderr
        assert "Traceback" not in result.stderr


def test_no_file_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)
    result = run_cli("run")
    assert result.returncode == 2
    assert "BRIDGE_CONFIG" in result.stderr
    result = run_cli("run", "-c", "/nonexistent/devices.yaml")
    assert result.returncode == 2
    assert "/nonexistent/devices.yaml: no such file" in result.stderr
