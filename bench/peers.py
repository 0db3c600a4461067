"""The peers the benchmarks run side by side, started as processes and measured from outside.

device-bridge (this checkout) and Node-RED 4.1.15 with node-red-contrib-modbus 5.23.3,
installed with npm into a cache folder on first use (``$BENCH_CACHE``, default
``~/.cache/device-bridge-bench``), both doing the same job on the farm of
``bench/modbus_farm.py``. CPU and RSS are read from ``/proc``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "device-bridge-bench"))
NODE_RED = CACHE / "node-red"
PACKAGES = ("node-red@4.1.15", "node-red-contrib-modbus@5.23.3")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process so far (seconds, in /proc's ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    return sum(cpu_times(pid))


def stolen_seconds(core: int | None = None) -> float:
    """Time the hypervisor ran something else while this virtual core (or, without one,
    any of them) wanted to run (``steal`` in ``/proc/stat``), so far."""
    name = "cpu" if core is None else f"cpu{core}"
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == name:
            return int(fields[8]) / TICKS
    return 0.0


#: the receive queues of the loopback device, whose ``rps_cpus`` say which cores the kernel
#: may hand a delivered segment's receive work to (Receive Packet Steering); all zeros, the
#: default, keeps it on the sending core
LOOPBACK_QUEUES = Path("/sys/class/net/lo/queues")


def loopback_steering() -> str:
    """Where loopback receive work is done, said for a benchmark's header."""
    masks = [int(q.joinpath("rps_cpus").read_text().replace(",", ""), 16)
             for q in LOOPBACK_QUEUES.glob("rx-*")]  # fmt: skip
    cores = {i for mask in masks for i in range(mask.bit_length()) if mask >> i & 1}
    if not cores:
        return "loopback receive work on the sending core"
    return f"loopback receive work steered to cores {sorted(cores)}"


@contextlib.contextmanager
def loopback_steered_to(cores: set[int] | None) -> Iterator[None]:
    """For the block, steer loopback receive work to ``cores`` (None: leave it as it is),
    then set it back. Needs root; the kernel's own tuning, not the bridge's."""
    if not cores:
        yield
        return
    queues = [q.joinpath("rps_cpus") for q in LOOPBACK_QUEUES.glob("rx-*")]
    before = [q.read_text().strip() for q in queues]
    try:
        for q in queues:
            q.write_text(f"{sum(1 << core for core in cores):x}\n")
        yield
    finally:
        for q, mask in zip(queues, before, strict=True):
            q.write_text(mask + "\n")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_http(url: str, process: subprocess.Popen[bytes], within: float = 60.0) -> None:
    """Wait until the process answers at this URL (it must not have exited)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if process.poll() is not None:
                name = process.args[0] if isinstance(process.args, list) else process.args
                raise RuntimeError(f"{name!s} exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_farm(
    devices: int, registers: int, port: int, change_ms: int | None = None
) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        str(BENCH / "modbus_farm.py"),
        "--devices",
        str(devices),
        "--registers",
        str(registers),
        "--port",
        str(port),
    ]
    if change_ms is not None:
        args += ["--clock", "--change-ms", str(change_ms)]
    farm = subprocess.Popen(args, stdout=subprocess.PIPE)
    assert farm.stdout is not None
    farm.stdout.readline()  # "farm: ..." once every port listens
    return farm


def bridge_file(
    folder: Path, devices: int, registers: int, interval: float, farm_port: int
) -> Path:
    lines = ["devices:"]
    for d in range(devices):
        lines += [
            f"  - id: d{d}",
            "    driver: modbus-tcp",
            f"    connection: {{host: 127.0.0.1, port: {farm_port + d}}}",
            f"    interval: {interval}",
            "    timeout: 1.0",
            "    points:",
        ]
        lines += [
            f"      - {{id: p{i}, table: holding, address: {i}, type: uint16}}"
            for i in range(registers)
        ]
    path = folder / "devices.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_bridge(folder: Path, config: Path, port: int, history: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BRIDGE_PORT": str(port),
        "BRIDGE_HISTORY": str(history),
        "BRIDGE_LOG_LEVEL": "WARNING",
        "BRIDGE_MAX_SUBSCRIBERS": "5000",
        "BRIDGE_MAX_CONNECTIONS": "6000",  # more than the subscribers, as the settings require
    }
    bridge = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "-c", str(config)], env=env, cwd=folder
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", bridge)
    return bridge


def install_node_red() -> Path:
    """Node-RED and the Modbus nodes in the cache folder (npm, first use only)."""
    red = NODE_RED / "node_modules" / "node-red" / "red.js"
    if not red.exists():
        NODE_RED.mkdir(parents=True, exist_ok=True)
        (NODE_RED / "package.json").write_text('{"name": "bench-node-red", "private": true}')
        print(f"installing {' and '.join(PACKAGES)} into {NODE_RED} ...", flush=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", *PACKAGES],
            cwd=NODE_RED,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return red


#: the Node-RED flow's job, as the bridge's: keep the latest readings, push every poll
JOB = """
const device = msg.topic;
const ts = new Date().toISOString();
let seq = context.get('seq') || 0;
const readings = msg.payload.map((value, i) => (
  {device, point: 'p' + i, value, unit: null, quality: 'good', ts, seq: ++seq}));
context.set('seq', seq);
let latest = flow.get('latest');
if (!latest) { latest = {}; flow.set('latest', latest); }
latest[device] = readings;
msg.payload = {type: 'readings', readings};
return msg;
"""


#: the HTTP side of the job: the latest readings of a device
LATEST = "msg.payload = (flow.get('latest') || {})[msg.req.params.device] || null; return msg;"


def node_red_flow(
    devices: int, registers: int, interval_ms: int, farm_port: int
) -> list[dict[str, object]]:
    flow: list[dict[str, object]] = [
        {"id": "tab", "type": "tab", "label": "bench"},
        {"id": "job", "type": "function", "z": "tab", "func": JOB, "outputs": 1, "wires": [["ws"]]},
        {"id": "wsl", "type": "websocket-listener", "path": "/ws/stream", "wholemsg": "false"},
        {
            "id": "ws",
            "type": "websocket out",
            "z": "tab",
            "server": "wsl",
            "client": "",
            "wires": [],
        },
        {
            "id": "hin",
            "type": "http in",
            "z": "tab",
            "url": "/latest/:device",
            "method": "get",
            "wires": [["hget"]],
        },
        {
            "id": "hget",
            "type": "function",
            "z": "tab",
            "outputs": 1,
            "wires": [["hout"]],
            "func": LATEST,
        },
        {
            "id": "hout",
            "type": "http response",
            "z": "tab",
            "statusCode": "",
            "headers": {},
            "wires": [],
        },
    ]
    for d in range(devices):
        flow.append(
            {
                "id": f"c{d}",
                "type": "modbus-client",
                "name": "",
                "clienttype": "tcp",
                "bufferCommands": True,
                "stateLogEnabled": False,
                "queueLogEnabled": False,
                "failureLogEnabled": False,
                "tcpHost": "127.0.0.1",
                "tcpPort": str(farm_port + d),
                "tcpType": "DEFAULT",
                "serialPort": "/dev/ttyUSB",
                "serialType": "RTU-BUFFERD",
                "serialBaudrate": "9600",
                "serialDatabits": "8",
                "serialStopbits": "1",
                "serialParity": "none",
                "serialConnectionDelay": "100",
                "serialAsciiResponseStartDelimiter": "0x3A",
                "unit_id": "1",
                "commandDelay": "1",
                "clientTimeout": "1000",
                "reconnectOnTimeout": True,
                "reconnectTimeout": "2000",
                "parallelUnitIdsAllowed": True,
            }
        )
        flow.append(
            {
                "id": f"r{d}",
                "type": "modbus-read",
                "z": "tab",
                "name": "",
                "topic": f"d{d}",
                "showStatusActivities": False,
                "logIOActivities": False,
                "showErrors": False,
                "unitid": "",
                "dataType": "HoldingRegister",
                "adr": "0",
                "quantity": str(registers),
                "rate": str(interval_ms),
                "rateUnit": "ms",
                "delayOnStart": False,
                "startDelayTime": "",
                "server": f"c{d}",
                "useIOFile": False,
                "ioFile": "",
                "useIOForPayload": False,
                "emptyMsgOnFail": False,
                "wires": [["job"], []],
            }
        )
    return flow


def start_node_red(
    folder: Path, flow: list[dict[str, object]], port: int
) -> subprocess.Popen[bytes]:
    red = install_node_red()
    user = Path(tempfile.mkdtemp(prefix="node-red-", dir=folder))
    (user / "flows.json").write_text(json.dumps(flow))
    (user / "settings.js").write_text(
        f"module.exports = {{uiPort: {port}, uiHost: '127.0.0.1', flowFile: 'flows.json',"
        " credentialSecret: false, logging: {console: {level: 'warn'}},"
        " editorTheme: {projects: {enabled: false}}};\n"
    )
    node = subprocess.Popen(
        ["node", str(red), "--userDir", str(user), "--settings", str(user / "settings.js")],
        cwd=NODE_RED,
        stdout=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/latest/d0", node)
    return node


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
