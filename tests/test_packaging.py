"""The distribution as users get it (README, "Running in a container"): a wheel, installed with pip into a fresh
virtual environment, runs the demo with nothing from the checkout.

There is no Docker engine here, so this stands in for the image: the wheel is built from
the files the Dockerfile's build stage copies, installed the way its final stage does, and
the Dockerfile's own promises (non-root, exec form, settings, health check) are read from it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest
from test_cli_lifecycle import (
    BRIDGE,
    DEMO_POINTS,
    READINGS_LINE,
    Child,
    assert_clean_exit,
    free_port,
    get,
    poll,
    readings_when_good,
    run_cli,
)

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
#: never part of a build context worth copying
IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".venv", ".git", "build", "dist", "*.egg-info", ".*_cache"
)

Instruction = tuple[str, str]


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\[ \t]*\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        keyword, _, arguments = line.strip().partition(" ")
        if keyword:
            found.append((keyword.upper(), arguments.strip()))
    return found


def stages(text: str) -> list[list[Instruction]]:
    """Instructions grouped by build stage, each beginning with its FROM."""
    grouped: list[list[Instruction]] = []
    for instruction in instructions(text):
        if instruction[0] == "FROM":
            grouped.append([])
        assert grouped, "the Dockerfile must begin with FROM"
        grouped[-1].append(instruction)
    return grouped


def context_copies(stage: list[Instruction]) -> list[tuple[list[str], str]]:
    """The stage's COPY instructions from the build context: (sources, destination)."""
    copies = []
    for keyword, arguments in stage:
        words = shlex.split(arguments)
        if keyword in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
            *sources, destination = [w for w in words if not w.startswith("--")]
            copies.append((sources, destination))
    return copies


def copy_build_context(target: Path) -> Path:
    """Copy what the Dockerfile's build stage copies from the checkout into ``target``.

    Building from a copy (as ``docker build`` does) also keeps setuptools' ``build/``
    directory out of the checkout. Sources missing from the checkout are skipped here;
    test_dockerfile_properties reports them.
    """
    target.mkdir()
    for sources, destination in context_copies(stages(DOCKERFILE.read_text())[0]):
        for source in sources:
            origin = REPO / source
            if not origin.exists():
                continue
            into_dir = destination.endswith("/") or len(sources) > 1
            place = target / destination / origin.name if into_dir else target / destination
            if origin.is_dir():
                shutil.copytree(origin, place, ignore=IGNORED)
            else:
                place.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, place)
    assert (target / "pyproject.toml").is_file()
    return target


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails for the shell form."""
    try:
        words = json.loads(arguments)
    except ValueError:
        words = None
    assert isinstance(words, list), f"{arguments!r} is not in exec form (a JSON array)"
    return words


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


def wheel_and_venv(tmp_path: Path) -> tuple[Path, Path]:
    """The wheel built from a copy of the build context, and a fresh virtual environment
    (made while the wheel is built)."""
    source = copy_build_context(tmp_path / "src")
    venv = tmp_path / "venv"
    with Child([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path) as making_venv:
        wheels = tmp_path / "wheels"
        command = (sys.executable, "-m", "pip")
        built = ok(run_cli(["wheel", "-v", "--no-deps", "-w", str(wheels), str(source)],
                           tmp_path, command=command, timeout=240))  # fmt: skip
        # every directory of the packages is declared (setuptools would drop it otherwise)
        assert "is absent from the `packages` configuration" not in built.stdout + built.stderr
        assert making_venv.proc.wait(timeout=120) == 0, making_venv.report()
    (wheel,) = wheels.glob("device_bridge-*.whl")
    return wheel, venv


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_installs_into_a_fresh_venv_and_runs_the_demo(tmp_path: Path) -> None:
    wheel, venv = wheel_and_venv(tmp_path)
    version = wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(f"device_bridge-{version}.dist-info/entry_points.txt")
    assert "bridge/demo/devices.yaml" in names  # the demo's device file
    assert "simulators/profiles/demo.yaml" in names  # the demo's simulator profile
    assert {"bridge/py.typed", "drivers/py.typed", "simulators/py.typed"} <= names
    assert not any(name.startswith("tests/") for name in names)
    declared = entry_points.decode()
    assert "[console_scripts]\ndevice-bridge = bridge.cli:main" in declared
    assert "[device_bridge.drivers]\n" in declared
    for line in (
        "modbus-tcp = drivers.modbus.tcp:ModbusTcpDriver",
        "modbus-rtu = drivers.modbus.rtu:ModbusRtuDriver",
        "serial-line = drivers.serial_line.driver:SerialLineDriver",
    ):
        assert line in declared
    assert "simulators/profiles/rtu_demo.yaml" in names
    assert f"device_bridge-{version}.dist-info/licenses/LICENSE" in names  # MIT, as declared
    page = {f"bridge/ui/static/{name}" for name in ("index.html", "app.js", "style.css")}
    assert page <= names  # the page's own files

    # installed, not editable, with its dependencies; from tmp_path the checkout is not
    # importable
    ok(run_cli(["install", "--disable-pip-version-check", f"{wheel}[service]"], tmp_path,
               command=[str(venv / "bin" / "pip")], timeout=240))  # fmt: skip
    script = (
        "import bridge, bridge.demo, simulators.modbus.profile as p; "
        "print(bridge.__file__); print(bridge.demo.DEVICE_FILE); print(p.DEMO_PROFILE)"
    )
    where = ok(run_cli(["-c", script], tmp_path, command=[str(venv / "bin" / "python")]))
    module, device_file, profile = (Path(line) for line in where.stdout.splitlines())
    for path in (module, device_file, profile):
        assert path.is_relative_to(venv), path
        assert "site-packages" in path.parts, path
        assert path.is_file(), path

    device_bridge = [str(venv / "bin" / "device-bridge")]
    shown = ok(run_cli(["--version"], tmp_path, command=device_bridge))
    assert shown.stdout.strip() == f"device-bridge {version}"  # bridge.__version__ agrees
    checked = ok(run_cli(["check", "-c", str(device_file)], tmp_path, command=device_bridge))
    assert f"{device_file}: ok, 4 device(s) on 3 link(s)" in checked.stdout

    port = free_port()
    with Child([*device_bridge, "demo", "--port", str(port)], cwd=tmp_path) as demo:
        base = demo.expect(READINGS_LINE).group(1)
        assert base == f"http://127.0.0.1:{port}"
        latest = poll(lambda: readings_when_good(base, DEMO_POINTS), 15, "every demo point good")
        assert set(latest) == DEMO_POINTS
        assert get(f"{base}/healthz") == (200, {"status": "ok"})
        with urllib.request.urlopen(f"{base}/ui/app.js", timeout=5) as served:  # from the wheel
            assert served.status == 200
        status = demo.stop(signal.SIGINT)
    assert_clean_exit(status, demo)


def test_dockerfile_properties() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    build, *_, final = stages(text)

    # every file the build stage copies is in the checkout (else `docker build` fails)
    for sources, _ in context_copies(build):
        missing = [source for source in sources if not (REPO / source).exists()]
        assert not missing, f"the Dockerfile copies {missing}, which the checkout lacks"

    last: dict[str, str] = {}
    environment: dict[str, str] = {}
    for keyword, arguments in final:
        last[keyword] = arguments
        if keyword == "ENV":
            for word in shlex.split(arguments):
                key, _, value = word.partition("=")
                environment[key] = value

    # a numeric, non-root user (so Kubernetes' runAsNonRoot can verify it)
    user = re.fullmatch(r"(\d+)(?::(\d+))?", last["USER"])
    assert user, f"USER {last['USER']} is not numeric"
    assert int(user.group(1)) != 0

    # exec form: the bridge is PID 1 and gets SIGTERM itself
    assert exec_form(last["ENTRYPOINT"]) == ["device-bridge"]
    assert exec_form(last["CMD"]) == ["run"]  # BRIDGE_CONFIG names the mounted device file

    assert environment["BRIDGE_HOST"] == "0.0.0.0"
    assert environment["BRIDGE_CONFIG"] == "/etc/device-bridge/devices.yaml"

    # a health check with the image's own python (slim images have no curl)
    healthcheck = last["HEALTHCHECK"]
    _, _, probe = healthcheck.partition("CMD ")
    command = exec_form(probe) if probe.lstrip().startswith("[") else shlex.split(probe)
    assert re.fullmatch(r"python3?(\.\d+)?", Path(command[0]).name), command
    assert not {"curl", "wget"} & set(re.findall(r"\w+", probe))
    assert "/healthz" in probe

    hadolint = Path(sys.executable).parent / "hadolint"
    if hadolint.exists():
        linted = subprocess.run(
            [str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60
        )
        assert linted.returncode == 0, linted.stdout + linted.stderr


#: what an agent does with the client alone: one reading over REST, one from the stream
AGENT = """
import asyncio, bridge.client
from bridge.client import BridgeClient, Reading

async def main():
    async with BridgeClient() as client:
        latest = await client.latest("boiler", "temperature")
        async with client.subscribe(points=["boiler/pressure"]) as stream:
            first = await anext(stream)
    assert isinstance(first, Reading), first
    print(bridge.client.__file__)
    print(latest.quality, first.point, first.quality)

asyncio.run(main())
"""
#: distributions the client must not bring along
SERVICE_ONLY = {"pymodbus", "pyserial", "pyserial-asyncio-fast", "pydantic", "pyyaml", "aiomqtt"}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_client_installs_alone_and_reads_a_live_bridge(tmp_path: Path) -> None:
    wheel, venv = wheel_and_venv(tmp_path)

    # `pip install device-bridge`: the client and aiohttp, none of the service's dependencies
    pip = [str(venv / "bin" / "pip"), "--disable-pip-version-check"]
    ok(run_cli(["install", str(wheel)], tmp_path, command=pip, timeout=240))
    listed = ok(run_cli(["list", "--format=json"], tmp_path, command=pip)).stdout
    installed = {package["name"].lower() for package in json.loads(listed)}
    assert "aiohttp" in installed
    assert not SERVICE_ONLY & installed, SERVICE_ONLY & installed

    # the service's command says what is missing, without a traceback
    refused = run_cli(["run"], tmp_path, command=[str(venv / "bin" / "device-bridge")])
    assert refused.returncode == 1, refused
    assert "pip install 'device-bridge[service]'" in refused.stderr
    assert "Traceback" not in refused.stderr

    # the installed client reads a live bridge (the demo, run from the checkout)
    port = free_port()
    with Child([*BRIDGE, "demo", "--port", str(port)], cwd=tmp_path) as demo:
        base = demo.expect(READINGS_LINE).group(1)
        poll(lambda: readings_when_good(base, DEMO_POINTS), 15, "every demo point good")
        answered = ok(run_cli(["-c", AGENT], tmp_path, env={"SERVICE_URL": base},
                              command=[str(venv / "bin" / "python")]))  # fmt: skip
        status = demo.stop(signal.SIGINT)
    assert_clean_exit(status, demo)
    client_file, result = answered.stdout.splitlines()
    assert Path(client_file).is_relative_to(venv), client_file  # not the checkout's
    assert result == "good pressure good"
