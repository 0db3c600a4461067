"""The ``modbus-tcp`` driver: Modbus TCP devices over an asyncio connection of our own.

Devices on one host and port share one connection; requests on it are never concurrent,
and the poller owns time (no retries or reconnection here). The framing is ours
(:mod:`drivers.modbus.mbap`), as RTU's is (:mod:`drivers.modbus.rtu_frame`): a
transaction is a frame written and the frame with its transaction id awaited, with
nothing else in between (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from drivers.base import DeviceTimeout, LinkError, Wire
from drivers.modbus.config import ModbusDevice, ModbusTcpDevice
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.link import ModbusLink
from drivers.modbus.mbap import MbapConnection, frame
from drivers.modbus.pdu import ReplyMismatch


class ModbusTcpLink(ModbusLink[ModbusTcpDevice]):
    """One TCP connection to a Modbus server (or gateway) shared by its devices."""

    def __init__(self, host: str, port: int, devices: Sequence[ModbusTcpDevice]) -> None:
        super().__init__(devices)
        self.host, self.port = host, port
        self._connect_timeout = max(d.timeout for d in devices)
        self._connection: MbapConnection | None = None
        self._late = 0  # of the connections closed before this one
        self._unframed = 0

    @property
    def is_open(self) -> bool:
        return self._connection is not None and not self._connection.lost

    async def open(self) -> None:
        await self.close()
        where = f"{self.host}:{self.port}"
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: MbapConnection(where), self.host, self.port
                )
        except (OSError, TimeoutError):
            raise LinkError(f"cannot connect to {where}") from None
        self._connection = connection

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._late += connection.late
            self._unframed += connection.unframed
            if connection.transport is not None:
                connection.transport.close()

    def counters(self, device_id: str) -> dict[str, int]:
        """The link's late replies dropped and unframed bytes skipped (all its devices')."""
        connection = self._connection
        late, unframed = self._late, self._unframed
        if connection is not None:
            late, unframed = late + connection.late, unframed + connection.unframed
        return {"late_replies": late, "unframed_bytes": unframed}

    async def transact(self, device: ModbusDevice, pdu: bytes, wire: Wire | None = None) -> bytes:
        """One request PDU, bounded by the device's timeout; the reply PDU as received,
        for :mod:`drivers.modbus.pdu` to check. A ``wire`` gets the request's MBAP frame
        and every byte that arrived from sending it until the answer (or the timeout), as
        it came: a late reply to an earlier request, or bytes that cannot be a frame, show
        beside the answer; what arrived since the previous watched request, with none out,
        is its ``unrequested`` (all are also counted: :meth:`counters`)."""
        connection = self._connection
        if connection is None or connection.lost:
            raise LinkError(f"connection to {self.host}:{self.port} is lost")
        if wire is not None:
            if connection.capture:
                wire.unrequested = bytes(connection.capture)
                wire.unrequested_at = connection.captured_at
            connection.capture = bytearray()
        elif connection.capture is not None:
            connection.capture = None  # nobody watches any more
        try:
            unit, reply = await connection.transact(device.unit, pdu, device.timeout)
        except TimeoutError:
            raise DeviceTimeout(
                f"unit {device.unit} at {self.host}:{self.port} did not answer within "
                f"{device.timeout:g} s"
            ) from None
        finally:
            if wire is not None:
                wire.sent = frame(connection.transaction, device.unit, pdu)
                wire.received = bytes(connection.capture or b"")
                connection.capture = bytearray()  # what comes before the next request
        if unit != device.unit:
            raise ReplyMismatch(f"a reply from unit {unit} instead of {device.unit}")
        return reply


class ModbusTcpDriver(ModbusDriver[ModbusTcpDevice]):
    """Modbus TCP: ``connection: {host, port}``, one connection per endpoint."""

    name = "modbus-tcp"
    device_model = ModbusTcpDevice

    def link_key(self, device: ModbusTcpDevice) -> str:
        return f"tcp://{device.connection.host}:{device.connection.port}"

    def open_link(self, key: str, devices: Sequence[ModbusTcpDevice]) -> ModbusTcpLink:
        connection = devices[0].connection
        return ModbusTcpLink(connection.host, connection.port, devices)
