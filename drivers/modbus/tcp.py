"""The ``modbus-tcp`` driver: Modbus TCP devices through the pymodbus async client.

pymodbus is used only here, for framing and the socket; its own retries and reconnection are
switched off, because the poller owns time. Devices on one host and port share one
connection; requests on it are never concurrent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from drivers.base import DeviceError, DeviceTimeout, LinkError
from drivers.modbus.config import ModbusDevice, ModbusTcpDevice
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.link import ModbusLink, ModbusRefusal
from drivers.modbus.planner import ReadBlock

# pymodbus logs every skipped late frame and lost connection at ERROR; the poller reports
# what matters to the user once, so its chatter is kept out of the service log.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class ModbusTcpLink(ModbusLink[ModbusTcpDevice]):
    """One TCP connection to a Modbus server (or gateway) shared by its devices."""

    def __init__(self, host: str, port: int, devices: Sequence[ModbusTcpDevice]) -> None:
        super().__init__(devices)
        self.host, self.port = host, port
        self._connect_timeout = max(d.timeout for d in devices)
        self._client: AsyncModbusTcpClient | None = None

    @property
    def is_open(self) -> bool:
        return self._client is not None and self._client.connected

    async def open(self) -> None:
        await self.close()
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            # Our own asyncio.timeout bounds each request; pymodbus's must not fire first.
            timeout=self._connect_timeout * 2 + 1,
            retries=0,
            reconnect_delay=0,
        )
        try:
            async with asyncio.timeout(self._connect_timeout):
                connected = await client.connect()
        except TimeoutError:
            connected = False
        if not connected:
            client.close()
            raise LinkError(f"cannot connect to {self.host}:{self.port}")
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _call(self, device: ModbusDevice, method: str, *args: Any, **kwargs: Any) -> Any:
        """One pymodbus request, bounded by the device's timeout, its failures ours."""
        client = self._client
        if client is None or not client.connected:
            raise LinkError(f"connection to {self.host}:{self.port} is lost")
        try:
            async with asyncio.timeout(device.timeout):
                response = await getattr(client, method)(*args, device_id=device.unit, **kwargs)
        except TimeoutError:
            raise DeviceTimeout(
                f"unit {device.unit} at {self.host}:{self.port} did not answer within "
                f"{device.timeout:g} s"
            ) from None
        except ModbusException as exc:
            if not client.connected:
                raise LinkError(f"connection to {self.host}:{self.port} is lost") from None
            raise DeviceError(f"bad answer from unit {device.unit}: {exc}") from None
        if response.isError():
            raise ModbusRefusal(int(response.exception_code))
        return response

    async def _write_registers(self, device: ModbusDevice, address: int, values: list[int]) -> None:
        if len(values) == 1:
            await self._call(device, "write_register", address, values[0])
        else:
            await self._call(device, "write_registers", address, values)

    async def _write_coil(self, device: ModbusDevice, address: int, value: bool) -> None:
        await self._call(device, "write_coil", address, value)

    async def _request(
        self, device: ModbusDevice, block: ReadBlock
    ) -> Sequence[int] | Sequence[bool]:
        method = {
            "holding": "read_holding_registers",
            "input": "read_input_registers",
            "coil": "read_coils",
            "discrete": "read_discrete_inputs",
        }[block.table]
        response = await self._call(device, method, block.start, count=block.count)
        if block.table in ("holding", "input"):
            registers: list[int] = response.registers
            if len(registers) != block.count:
                raise DeviceError(
                    f"unit {device.unit} answered {len(registers)} registers for {block.count}"
                )
            return registers
        bits: list[bool] = response.bits
        if len(bits) < block.count:
            raise DeviceError(f"unit {device.unit} answered {len(bits)} bits for {block.count}")
        return bits[: block.count]


class ModbusTcpDriver(ModbusDriver[ModbusTcpDevice]):
    """Modbus TCP: ``connection: {host, port}``, one connection per endpoint."""

    name = "modbus-tcp"
    device_model = ModbusTcpDevice

    def link_key(self, device: ModbusTcpDevice) -> str:
        return f"tcp://{device.connection.host}:{device.connection.port}"

    def open_link(self, key: str, devices: Sequence[ModbusTcpDevice]) -> ModbusTcpLink:
        connection = devices[0].connection
        return ModbusTcpLink(connection.host, connection.port, devices)
