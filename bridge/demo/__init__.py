"""``device-bridge demo``: the bundled simulators and a bridge on them, in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bridge.config import BridgeConfig, parse_config
from bridge.server import serve_until_stopped
from simulators.modbus_tcp import ModbusTcpServer
from simulators.profile import DEMO_PROFILE, load_profile

DEVICE_FILE = Path(__file__).with_name("devices.yaml")


def demo_config(modbus_tcp_port: int, api_port: int | None = None) -> BridgeConfig:
    """The bundled device file, pointed at simulators listening on the given ports."""
    text = DEVICE_FILE.read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    for device in data["devices"]:
        if device["driver"] == "modbus-tcp":
            device["connection"]["port"] = modbus_tcp_port
    if api_port is not None:
        data.setdefault("server", {})["port"] = api_port
    return parse_config(data, str(DEVICE_FILE), text)


async def run_demo(api_port: int | None = None) -> int:
    """Run the simulators and a bridge until SIGINT or SIGTERM; returns the exit status."""
    simulator = load_profile(DEMO_PROFILE)
    tcp = ModbusTcpServer(simulator)
    tcp_port = await tcp.start("127.0.0.1", 0)
    async with tcp:
        config = demo_config(tcp_port, api_port)
        await serve_until_stopped(
            config,
            [f"  simulator: modbus-tcp on 127.0.0.1:{tcp_port}", "Press Ctrl-C to stop."],
        )
    return 0
