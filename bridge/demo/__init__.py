"""``device-bridge demo``: the bundled simulators and a bridge on them, in one process."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bridge.config import BridgeConfig, parse_config
from bridge.server import serve_until_stopped
from simulators.modbus import ModbusSimulator
from simulators.modbus.profile import DEMO_PROFILE, load_profile
from simulators.modbus.rtu import RTU_DEMO_PROFILE, ModbusRtuServer
from simulators.modbus.tcp import ModbusTcpServer
from simulators.serial_line import LineInstrument

DEVICE_FILE = Path(__file__).with_name("devices.yaml")

#: the device file's placeholders for the simulators' serial ports
RTU_PORT = "/dev/ttyUSB0"
LINE_PORT = "/dev/ttyACM0"


def demo_config(
    modbus_tcp_port: int,
    ports: dict[str, str],
    api_port: int | None = None,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> BridgeConfig:
    """The bundled device file, pointed at simulators listening on the given ports.

    ``ports`` maps the file's serial port names to the simulators' pseudo-terminals;
    ``edit``, if given, may change the file's data before it is validated (tests shorten
    the intervals).
    """
    text = DEVICE_FILE.read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    for device in data["devices"]:
        connection = device["connection"]
        if device["driver"] == "modbus-tcp":
            connection["port"] = modbus_tcp_port
        elif connection.get("port") in ports:
            connection["port"] = ports[connection["port"]]
    if api_port is not None:
        data.setdefault("server", {})["port"] = api_port
    if edit is not None:
        edit(data)
    return parse_config(data, str(DEVICE_FILE), text)


@dataclass
class DemoSimulators:
    """The demo's simulators, running, and where they are."""

    modbus_tcp: ModbusSimulator
    modbus_tcp_port: int
    modbus_rtu: ModbusRtuServer
    rtu_path: str
    scale: LineInstrument
    scale_path: str

    def config(
        self, api_port: int | None = None, edit: Callable[[dict[str, Any]], None] | None = None
    ) -> BridgeConfig:
        """The demo device file pointed at these simulators (see :func:`demo_config`)."""
        ports = {RTU_PORT: self.rtu_path, LINE_PORT: self.scale_path}
        return demo_config(self.modbus_tcp_port, ports, api_port, edit)


@asynccontextmanager
async def demo_simulators() -> AsyncIterator[DemoSimulators]:
    """Start the demo's simulators (a boiler, a bus of two flow meters, a scale)."""
    async with AsyncExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="device-bridge-demo-"))
        simulator = load_profile(DEMO_PROFILE)
        tcp = ModbusTcpServer(simulator)
        tcp_port = await tcp.start("127.0.0.1", 0)
        await stack.enter_async_context(tcp)
        rtu = ModbusRtuServer(load_profile(RTU_DEMO_PROFILE), baudrate=19200,
                              link_dir=folder, name="ttyUSB0")  # fmt: skip
        rtu_path = await rtu.start()
        stack.push_async_callback(rtu.stop)
        scale = LineInstrument(mode="query", format="sics", link_dir=folder, name="ttyACM0")
        scale.moving = True
        scale_path = await scale.start()
        stack.push_async_callback(scale.stop)
        yield DemoSimulators(simulator, tcp_port, rtu, rtu_path, scale, scale_path)


async def run_demo(api_port: int | None = None) -> int:
    """Run the simulators and a bridge until SIGINT or SIGTERM; returns the exit status."""
    async with demo_simulators() as sims:
        await serve_until_stopped(
            sims.config(api_port),
            [
                f"  simulator: modbus-tcp on 127.0.0.1:{sims.modbus_tcp_port} (boiler)",
                f"  simulator: modbus-rtu on {sims.rtu_path} (flow-a, flow-b)",
                f"  simulator: serial-line on {sims.scale_path} (scale)",
                "Press Ctrl-C to stop.",
            ],
        )
    return 0
