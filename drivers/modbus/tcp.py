"""The ``modbus-tcp`` driver: Modbus TCP devices through the pymodbus async client.

pymodbus is used only here, for framing and the socket; its own retries and reconnection are
switched off, because the poller owns time. Devices on one host and port share one
connection; requests on it are never concurrent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from drivers.base import DeviceError, DeviceTimeout, LinkError
from drivers.modbus.config import ModbusDevice, ModbusTcpDevice
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.link import ModbusLink
from drivers.modbus.pdu import ReplyMismatch

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
        for reply_class in RAW_REPLIES:
            client.register(reply_class)
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def transact(self, device: ModbusDevice, pdu: bytes) -> bytes:
        """One request PDU through pymodbus, bounded by the device's timeout, its failures
        ours; the reply PDU as received, for :mod:`drivers.modbus.pdu` to check."""
        client = self._client
        if client is None or not client.connected:
            raise LinkError(f"connection to {self.host}:{self.port} is lost")
        try:
            async with asyncio.timeout(device.timeout):
                response = await client.execute(False, RawRequest(pdu, device.unit))
        except TimeoutError:
            raise DeviceTimeout(
                f"unit {device.unit} at {self.host}:{self.port} did not answer within "
                f"{device.timeout:g} s"
            ) from None
        except ModbusException as exc:
            if not client.connected:
                raise LinkError(f"connection to {self.host}:{self.port} is lost") from None
            raise DeviceError(f"bad answer from unit {device.unit}: {exc}") from None
        if response.dev_id != device.unit:
            raise ReplyMismatch(f"a reply from unit {response.dev_id} instead of {device.unit}")
        if isinstance(response, RawReply):
            return response.pdu
        if response.isError():
            return bytes((response.function_code, response.exception_code))
        raise ReplyMismatch(f"a reply of function {response.function_code} to function {pdu[0]}")


class RawRequest(ModbusPDU):
    """A request PDU as :mod:`drivers.modbus.pdu` built it; pymodbus only frames it."""

    def __init__(self, pdu: bytes, dev_id: int) -> None:
        super().__init__(dev_id=dev_id)
        self.function_code = pdu[0]
        self._data = pdu[1:]

    def encode(self) -> bytes:
        return self._data


class RawReply(ModbusPDU):
    """A reply kept as the bytes received, so that our checks judge it, not pymodbus's.

    pymodbus decodes a reply by its own function code, whatever was asked, and ignores the
    byte count of bit reads; registered for every function the driver sends, this class
    keeps the PDU whole instead.
    """

    pdu: bytes = b""

    def decode(self, data: bytes) -> None:
        self.pdu = bytes((self.function_code,)) + data

    def encode(self) -> bytes:
        return self.pdu[1:]

    def __str__(self) -> str:
        # pymodbus' decoder formats every reply for a debug line, log level or not
        # (pymodbus/pdu/decoders.py, ``str(pdu)``): nothing to build here.
        return type(self).__name__


RAW_REPLIES: tuple[type[RawReply], ...] = tuple(
    type(f"RawReply{code}", (RawReply,), {"function_code": code})
    for code in (1, 2, 3, 4, 5, 6, 15, 16)
)


class ModbusTcpDriver(ModbusDriver[ModbusTcpDevice]):
    """Modbus TCP: ``connection: {host, port}``, one connection per endpoint."""

    name = "modbus-tcp"
    device_model = ModbusTcpDevice

    def link_key(self, device: ModbusTcpDevice) -> str:
        return f"tcp://{device.connection.host}:{device.connection.port}"

    def open_link(self, key: str, devices: Sequence[ModbusTcpDevice]) -> ModbusTcpLink:
        connection = devices[0].connection
        return ModbusTcpLink(connection.host, connection.port, devices)
