"""Drivers are found through the entry-point group ``device_bridge.drivers`` (README, "Adding a driver").

A driver shipped by another distribution is picked up exactly like the built-in one: a
module and a ``*.dist-info`` folder, as pip leaves an installed package, on the path,
and nothing else. It is validated by ``check``, polled by ``run`` and served over HTTP.
"""

from __future__ import annotations

import logging
import signal
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from test_cli_lifecycle import BRIDGE, READINGS_LINE, Child, assert_clean_exit, get, poll, run_cli

from bridge.registry import GROUP, available_drivers
from drivers.base import Driver
from drivers.modbus.tcp import ModbusTcpDriver

ECHO_DRIVER = '''\
"""A third-party driver: every point reads the value its entry in the device file gives."""

from collections.abc import Sequence

from pydantic import Field

from drivers.base import DeviceConfig, Driver, Link, PointConfig, ReadResult


class EchoPoint(PointConfig):
    value: float | int | bool | str


class EchoDevice(DeviceConfig):
    points: Sequence[EchoPoint] = Field(min_length=1)


class EchoLink(Link):
    def __init__(self) -> None:
        self._open = False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    async def read(self, device: DeviceConfig) -> ReadResult:
        assert isinstance(device, EchoDevice)
        return {point.id: point.value for point in device.points}


class EchoDriver(Driver):
    name = "echo"
    device_model = EchoDevice

    def link_key(self, device: DeviceConfig) -> str:
        return f"echo:{device.id}"

    def open_link(self, key: str, devices: Sequence[DeviceConfig]) -> Link:
        return EchoLink()


NOT_A_DRIVER = EchoLink
'''

ECHO_DEVICES = """\
devices:
  - id: echo-1
    driver: echo
    interval: 0.1
    points:
      - {id: answer, value: 42, unit: V}
      - {id: ratio, value: 0.25}
      - {id: greeting, value: hello}
"""


def install_distribution(site: Path, name: str, entries: dict[str, str]) -> None:
    """Leave ``name`` 1.0 in ``site`` as pip would: its metadata and its entry points."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 1.0\n",
        encoding="utf-8",
    )
    lines = "".join(f"{entry} = {target}\n" for entry, target in entries.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}", encoding="utf-8")
    (info / "INSTALLER").write_text("pip\n", encoding="utf-8")
    (info / "top_level.txt").write_text(f"{name}\n", encoding="utf-8")


@pytest.fixture
def echo_site(tmp_path: Path) -> Path:
    """A site directory holding the ``echo-driver`` distribution."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "echo_driver.py").write_text(ECHO_DRIVER, encoding="utf-8")
    install_distribution(site, "echo_driver", {"echo": "echo_driver:EchoDriver"})
    return site


@pytest.fixture
def devices_file(tmp_path: Path) -> Path:
    path = tmp_path / "echo.yaml"
    path.write_text(ECHO_DEVICES, encoding="utf-8")
    return path


def test_builtin_driver_is_registered_through_the_entry_point_group() -> None:
    declared = {entry.name: entry for entry in entry_points(group=GROUP)}
    assert declared["modbus-tcp"].value == "drivers.modbus.tcp:ModbusTcpDriver"
    assert declared["modbus-tcp"].dist is not None
    assert declared["modbus-tcp"].dist.name == "device-bridge"
    drivers = available_drivers()
    assert "modbus-tcp" in drivers
    assert isinstance(drivers["modbus-tcp"], ModbusTcpDriver)
    assert all(isinstance(driver, Driver) for driver in drivers.values())


def test_check_accepts_a_driver_from_another_distribution(
    tmp_path: Path, echo_site: Path, devices_file: Path
) -> None:
    result = run_cli(["check", "-c", str(devices_file)], tmp_path, {"PYTHONPATH": str(echo_site)})
    assert result.returncode == 0, result
    assert f"{devices_file}: ok, 1 device(s) on 1 link(s)" in result.stdout
    assert "echo:echo-1 (echo): echo-1" in result.stdout  # the link, by the plug-in's key
    assert "echo-1 (echo, every 0.1 s, timeout 1 s): 3 point(s)" in result.stdout


def test_check_without_the_plugin_names_the_driver_and_lists_installed_ones(
    tmp_path: Path, devices_file: Path
) -> None:
    result = run_cli(["check", "-c", str(devices_file)], tmp_path)
    assert result.returncode == 2, result
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{devices_file}: devices[0].driver (line 3): ")
    assert "'echo' is not an installed driver" in line
    assert "(drivers: " in line
    assert "modbus-tcp" in line.split("(drivers: ", 1)[1]
    assert "Traceback" not in result.stderr


def test_the_plugin_validates_its_own_devices_with_places(tmp_path: Path, echo_site: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent("""\
            devices:
              - id: echo-1
                driver: echo
                points:
                  - {id: answer, value: 42, volume: 11}
                  - {id: silent}
            """),
        encoding="utf-8",
    )
    result = run_cli(["check", "-c", str(path)], tmp_path, {"PYTHONPATH": str(echo_site)})
    assert result.returncode == 2, result
    assert f"{path}: devices[0].points[0].volume (line 5): unknown key" in result.stderr
    assert f"{path}: devices[0].points[1].value" in result.stderr  # all problems at once
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(30)
def test_run_serves_readings_of_a_plugin_driver(
    tmp_path: Path, echo_site: Path, devices_file: Path
) -> None:
    env = {"PYTHONPATH": str(echo_site), "BRIDGE_PORT": "0"}
    command = [*BRIDGE, "run", "-c", str(devices_file)]
    with Child(command, cwd=tmp_path, env=env) as bridge:
        # port 0: the bridge prints the port it was given
        base = bridge.expect(READINGS_LINE).group(1)
        point = f"{base}/api/v1/devices/echo-1/points"

        def good(point_id: str) -> dict[str, object] | None:
            status, reading = get(f"{point}/{point_id}")
            assert status == 200, reading
            return reading if reading["quality"] == "good" else None

        answer = poll(lambda: good("answer"), 10, "echo-1/answer read")
        assert (answer["device"], answer["value"], answer["unit"]) == ("echo-1", 42, "V")
        assert poll(lambda: good("ratio"), 5, "echo-1/ratio read")["value"] == 0.25
        assert poll(lambda: good("greeting"), 5, "echo-1/greeting read")["value"] == "hello"

        status, devices = get(f"{base}/api/v1/devices")
        assert status == 200
        assert [(d["id"], d["driver"]) for d in devices["devices"]] == [("echo-1", "echo")]
        status = bridge.stop(signal.SIGINT)
    assert_clean_exit(status, bridge)


@pytest.fixture
def fresh_registry(echo_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process sees the echo site; the registry is rebuilt now and after the test."""
    monkeypatch.syspath_prepend(str(echo_site))
    available_drivers.cache_clear()
    yield
    available_drivers.cache_clear()
    sys.modules.pop("echo_driver", None)


def test_a_broken_plugin_is_logged_and_does_not_hide_the_others(
    echo_site: Path, fresh_registry: None, caplog: pytest.LogCaptureFixture
) -> None:
    install_distribution(
        echo_site,
        "broken_drivers",
        {"missing": "no_such_module:Driver", "wrong": "echo_driver:NOT_A_DRIVER"},
    )
    with caplog.at_level(logging.ERROR, logger="bridge.registry"):
        drivers = available_drivers()
    assert {"modbus-tcp", "echo"} <= set(drivers)
    assert "missing" not in drivers
    assert "wrong" not in drivers
    assert type(drivers["echo"]).__module__ == "echo_driver"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "driver 'missing' (no_such_module:Driver) cannot be loaded" in logged
    assert "driver 'wrong' (echo_driver:NOT_A_DRIVER) is not a Driver subclass" in logged
