"""The ``device-bridge`` command as a user runs it (README, "The command line"): real processes, signals
and sockets on 127.0.0.1, no mocks.

Every wait has a deadline: a child's stdout is read by a thread, so the test waits for
the line saying where the child listens, and HTTP is polled until the answer is right.
The helpers here (``Child``, ``run_cli``, ``poll``, ...) are used by test_registry.py and
test_packaging.py too.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

from bridge.demo import DEVICE_FILE

T = TypeVar("T")

BRIDGE = (sys.executable, "-m", "bridge")
#: ``  readings: http://127.0.0.1:5000/api/v1/readings``: group 1 is the base URL
READINGS_LINE = r"readings: (http://\S+)/api/v1/readings"
#: ``modbus-tcp simulator listening on 127.0.0.1:5020 (units 1)``: group 1 is the port
SIMULATOR_LINE = r"modbus-tcp simulator listening on 127\.0\.0\.1:(\d+)"


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without what would change a child's behaviour."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BRIDGE_") and key not in ("PYTHONPATH", "SERVICE_URL")
    }
    env.update(extra or {})
    return env


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_cli(
    args: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] = BRIDGE,
    timeout: float = 20.0,
) -> subprocess.CompletedProcess[str]:
    """Run a command that ends by itself; its exit status and output."""
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=child_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


class Child:
    """A long-running child process; ``with`` kills it if the test did not stop it."""

    def __init__(
        self, args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen(
            self.args,
            cwd=cwd,
            env=child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._out: list[str] = []
        self._err: list[str] = []
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._out, True)),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err, False)),
        ]
        for reader in self._readers:
            reader.daemon = True
            reader.start()

    def _pump(self, stream: IO[str], sink: list[str], announce: bool) -> None:
        for line in stream:
            sink.append(line)
            if announce:
                self.lines.put(line)
        if announce:
            self.lines.put(None)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self._reap(10.0)

    def _reap(self, timeout: float) -> int:
        status = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5.0)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return status

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        """What the child wrote to stderr (all of it once the child has been stopped)."""
        return "".join(self._err)

    def report(self) -> str:
        return f"{' '.join(self.args)}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"

    def expect(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The first further stdout line matching ``pattern``, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s\n{self.report()}")
            if line is None:
                status = self._reap(5.0)
                pytest.fail(f"exited with {status} before printing {pattern!r}\n{self.report()}")
            found = re.search(pattern, line)
            if found:
                return found

    def stop(self, sig: signal.Signals, within: float = 5.0) -> int:
        """Send ``sig``; the exit status, which must come within ``within`` seconds."""
        self.proc.send_signal(sig)
        try:
            return self._reap(within)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {within} s after {sig.name}\n{self.report()}")


def get(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    """GET ``url``: status and decoded JSON body (text if it is not JSON)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode("utf-8", "replace")


def poll(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Call ``probe`` until it gives something truthy; fail after ``timeout`` seconds.

    Connection errors count as "not yet" (the server may still be starting).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
        except OSError as exc:  # URLError, connection refused or reset, timeouts
            result, last = None, exc
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s (last error: {last!r})")
        time.sleep(0.05)


def readings(base: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Latest readings of a bridge by (device, point)."""
    status, body = get(f"{base}/api/v1/readings")
    assert status == 200, body
    return {(r["device"], r["point"]): r for r in body["readings"]}


def readings_when_good(
    base: str, expected: set[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]] | None:
    """The readings once every expected point is there with quality good, else None."""
    latest = readings(base)
    if expected <= set(latest) and all(latest[key]["quality"] == "good" for key in expected):
        return latest
    return None


def demo_file() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEVICE_FILE.read_text(encoding="utf-8"))
    return data


DEMO_POINTS = {(d["id"], p["id"]) for d in demo_file()["devices"] for p in d["points"]}
TEMPERATURE = ("boiler", "temperature")


#: what stderr never shows after a clean stop
UNCLEAN = ("Traceback", "Exception ignored", "Task was destroyed", "Unclosed", " ERROR ")


def assert_clean_exit(status: int, child: Child) -> None:
    assert status == 0, child.report()
    for sign in UNCLEAN:
        assert sign not in child.stderr, child.report()


# -- demo ------------------------------------------------------------------------------


@pytest.mark.timeout(40)
def test_demo_serves_moving_good_readings_and_stops_on_sigint(tmp_path: Path) -> None:
    port = free_port()
    env = {"BRIDGE_LOG_FORMAT": "json"}
    with Child([*BRIDGE, "demo", "--port", str(port)], cwd=tmp_path, env=env) as demo:
        base = demo.expect(READINGS_LINE).group(1)
        assert base == f"http://127.0.0.1:{port}"
        demo.expect(r"simulator: modbus-tcp on 127\.0\.0\.1:\d+")

        first = poll(lambda: readings_when_good(base, DEMO_POINTS), 10, "every demo point good")
        assert set(first) == DEMO_POINTS
        before = first[TEMPERATURE]
        assert 55.0 <= before["value"] <= 65.0, before  # 60 ± 5
        assert before["unit"] == "°C"
        assert first[("boiler", "model")]["value"] == "BOILER-1"

        def moved() -> dict[str, Any] | None:
            now = readings(base)[TEMPERATURE]
            return now if now["value"] != before["value"] else None

        after = poll(moved, 8, "the temperature (a 30 s sine) to move")
        assert after["quality"] == "good"
        assert 55.0 <= after["value"] <= 65.0, after
        assert after["seq"] > before["seq"]
        assert after["ts"] > before["ts"]

        assert get(f"{base}/healthz")[0] == 200
        status = demo.stop(signal.SIGINT)
    assert_clean_exit(status, demo)
    # the demo honours BRIDGE_LOG_FORMAT: one JSON object a line
    logged = [json.loads(line) for line in demo.stderr.splitlines() if line.strip()]
    assert any(record["message"] == "boiler is online" for record in logged), demo.stderr


def test_demo_on_a_busy_port_exits_1_with_a_message(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(["demo", "--port", str(port)], tmp_path)
    assert result.returncode == 1, result
    assert f"127.0.0.1:{port}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


# -- run -------------------------------------------------------------------------------


def write_device_file(path: Path, modbus_port: int) -> Path:
    """The demo's Modbus TCP devices, pointed at a simulator on ``modbus_port``, polling fast."""
    data = demo_file()
    data["devices"] = [d for d in data["devices"] if d["driver"] == "modbus-tcp"]
    for device in data["devices"]:
        device["connection"]["port"] = modbus_port
        device["interval"] = 0.2
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.timeout(40)
def test_run_on_a_simulator_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    with Child([*BRIDGE, "simulate", "modbus-tcp", "--port", "0"], cwd=tmp_path) as simulator:
        modbus_port = int(simulator.expect(SIMULATOR_LINE).group(1))
        assert modbus_port > 0
        devices = write_device_file(tmp_path / "devices.yaml", modbus_port)
        api_port = free_port()
        command = [*BRIDGE, "run", "-c", str(devices)]
        with Child(command, cwd=tmp_path, env={"BRIDGE_PORT": str(api_port)}) as bridge:
            base = bridge.expect(READINGS_LINE).group(1)
            assert base == f"http://127.0.0.1:{api_port}"  # BRIDGE_PORT is honoured
            boiler = {(d, p) for d, p in DEMO_POINTS if d == "boiler"}
            latest = poll(lambda: readings_when_good(base, boiler), 10, "every point good")
            assert set(latest) == boiler
            assert 55.0 <= latest[TEMPERATURE]["value"] <= 65.0
            status, device = get(f"{base}/api/v1/devices/boiler")
            assert status == 200
            assert device["status"] == "online"
            status = bridge.stop(signal.SIGTERM)
        assert_clean_exit(status, bridge)
        # the simulator outlives the bridge and still stops cleanly on its own signal
        status = simulator.stop(signal.SIGINT)
    assert_clean_exit(status, simulator)


@pytest.mark.timeout(30)
def test_run_with_an_unreachable_device_still_serves_and_stops_on_sigint(
    tmp_path: Path,
) -> None:
    devices = write_device_file(tmp_path / "devices.yaml", free_port())  # nobody listens
    env = {"BRIDGE_PORT": "0"}
    with Child([*BRIDGE, "run", "-c", str(devices)], cwd=tmp_path, env=env) as bridge:
        base = bridge.expect(READINGS_LINE).group(1)
        assert not base.endswith(":0")  # the bound port is printed, not the one asked for
        assert get(f"{base}/healthz")[0] == 200  # never depends on devices

        def tried() -> dict[str, Any] | None:
            status, device = get(f"{base}/api/v1/devices/boiler")
            assert status == 200, device
            return device if device["status"] == "offline" else None

        device = poll(tried, 10, "the unreachable device reported offline")
        assert device["last_error"]
        assert readings(base)[TEMPERATURE]["quality"] == "bad"
        status = bridge.stop(signal.SIGINT)
    assert_clean_exit(status, bridge)


# -- simulate --------------------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_simulate_modbus_tcp_serves_a_third_party_client(tmp_path: Path) -> None:
    port = free_port()
    command = [*BRIDGE, "simulate", "modbus-tcp", "--port", str(port)]
    with Child(command, cwd=tmp_path) as simulator:
        assert int(simulator.expect(SIMULATOR_LINE).group(1)) == port
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        try:
            assert await client.connect()
            temperature = await client.read_holding_registers(0, count=2, device_id=1)
            model = await client.read_holding_registers(40, count=8, device_id=1)
        finally:
            client.close()
        assert not temperature.isError(), temperature
        (value,) = struct.unpack(">f", struct.pack(">HH", *temperature.registers))
        assert 55.0 <= value <= 65.0  # the demo profile: 60 ± 5, float32 big-endian
        assert not model.isError(), model
        assert struct.pack(">8H", *model.registers).rstrip(b"\0") == b"BOILER-1"
        status = simulator.stop(signal.SIGINT)
    assert_clean_exit(status, simulator)


def test_simulate_on_a_busy_port_exits_1_with_a_message(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(["simulate", "modbus-tcp", "--port", str(port)], tmp_path)
    assert result.returncode == 1, result
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


# -- arguments -------------------------------------------------------------------------


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = run_cli(["--help"], tmp_path)
    assert result.returncode == 0, result
    for command in ("run", "demo", "check", "probe", "scan", "simulate"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("command", ["run", "check", "simulate", "probe", "scan"])
def test_help_shows_defaults_and_examples(tmp_path: Path, command: str) -> None:
    result = run_cli([command, "--help"], tmp_path)
    assert result.returncode == 0, result
    assert "default" in result.stdout
    assert re.search(r"^examples?:\n  device-bridge ", result.stdout, re.MULTILINE), result.stdout


def test_a_bad_log_setting_in_the_environment_is_blamed_on_it(tmp_path: Path) -> None:
    result = run_cli(["simulate", "modbus-tcp"], tmp_path, env={"BRIDGE_LOG_LEVEL": "loud"})
    assert result.returncode == 2, result
    assert result.stderr.startswith("environment variable BRIDGE_LOG_LEVEL: 'LOUD'")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "required: COMMAND"),
        (["simulate", "modbus-tcp", "--port", "many"], "invalid int value: 'many'"),
        (["check"], "no device file"),
    ],
    ids=["unknown-command", "no-command", "bad-port", "check-without-file"],
)
def test_bad_arguments_exit_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli(args, tmp_path)
    assert result.returncode == 2, result
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
