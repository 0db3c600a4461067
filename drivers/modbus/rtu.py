"""The ``modbus-rtu`` driver: Modbus RTU devices on a serial bus (RS-485, or RS-232).

Devices whose connection names the same port are one bus: one open port, one request at a
time, with the silent interval RTU requires between frames (3.5 character times, or 1.75 ms
above 19200 baud, plus the connection's ``extra_gap`` for slow converters).

We frame RTU ourselves (:mod:`drivers.modbus.rtu_frame`) rather than through pymodbus:
the bus needs exact control of the silent interval, of stray bytes before a reply (line
noise at RS-485 turnaround), and of what is discarded, so that a late reply to a timed-out
request is never taken as the answer to the next one. Before each request the line must
have been silent for the interval and everything received is discarded; a reply must then
carry the right unit, function, byte count and CRC.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from drivers.base import DeviceError, DeviceTimeout, LinkError, Wire
from drivers.modbus.config import ModbusDevice, ModbusRtuDevice, RtuConnection
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.link import ModbusLink
from drivers.modbus.pdu import ForeignReply
from drivers.modbus.rtu_frame import find_reply, frame, reply_size
from drivers.serial_port import SerialChannel, bus_key, check_bus

#: below this, asyncio's timers (1 ms granularity) are too coarse: the rest is spun
_SPIN = 0.0012


def silent_interval(connection: RtuConnection) -> float:
    """Seconds the line must be quiet between frames (Modbus over serial line, 2.5.1.1)."""
    base = 3.5 * connection.char_time if connection.baudrate <= 19200 else 0.00175
    return base + connection.extra_gap


async def wait_until(moment: float) -> None:
    """Wait until the monotonic ``moment``, to well under a millisecond."""
    remaining = moment - time.monotonic()
    if remaining > _SPIN:
        await asyncio.sleep(remaining - _SPIN)
    # Spinning at most a millisecond: an RTU gap at high baud rates is shorter than the
    # event loop's timer resolution, and every lost fraction of it is lost bus time.
    while time.monotonic() < moment:
        pass


class ModbusRtuLink(ModbusLink[ModbusRtuDevice]):
    """One serial port and the Modbus units on it."""

    def __init__(self, connection: RtuConnection, devices: Sequence[ModbusRtuDevice]) -> None:
        super().__init__(devices)
        self.connection = connection
        self._gap = silent_interval(connection)
        self._open_timeout = max(d.timeout for d in devices)
        self._channel: SerialChannel | None = None
        self._quiet_from = 0.0
        self._unrequested = 0  # bytes dropped before a request: nothing had asked for them
        self._foreign = 0  # requests that got only another unit's reply

    @property
    def is_open(self) -> bool:
        return self._channel is not None and self._channel.is_open

    async def open(self) -> None:
        await self.close()
        self._channel = await SerialChannel.open(self.connection, self._open_timeout)
        self._quiet_from = time.monotonic()

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def counters(self, device_id: str) -> dict[str, int]:
        """For all the bus's devices: bytes that arrived while nothing was asked, dropped
        before the next request, and requests that got only another unit's reply (each a
        reply after its timeout, another master, or noise)."""
        return {"unrequested_bytes": self._unrequested, "other_unit_replies": self._foreign}

    async def transact(self, device: ModbusDevice, pdu: bytes, wire: Wire | None = None) -> bytes:
        """Send one request PDU to the device and return its reply PDU.

        The reply is framed (unit, CRC, the size a reply to this request has) but not
        checked against the request: that is :mod:`drivers.modbus.pdu`'s. Raises
        DeviceTimeout when nothing usable came, DeviceError when only unusable frames
        came, LinkError when the port is gone. A ``wire`` gets the request frame and every
        byte that arrived after it, noise and bad frames included, and the bytes dropped
        before it (``unrequested``).
        """
        size = reply_size(pdu[0], int.from_bytes(pdu[3:5], "big"))
        channel = self._channel
        if channel is None or not channel.is_open:
            raise LinkError(f"{self.connection.port} is not open")
        await wait_until(max(channel.last_byte_at, self._quiet_from) + self._gap)
        if wire is not None and channel.buffer:
            wire.unrequested = bytes(channel.buffer)
            wire.unrequested_at = time.time() - (time.monotonic() - channel.last_byte_at)
        self._unrequested += channel.discard()
        request = frame(device.unit, pdu)
        channel.write(request)
        sent = time.monotonic()
        on_wire = len(request) * self.connection.char_time
        self._quiet_from = sent + on_wire
        deadline = sent + on_wire + device.timeout
        function = pdu[0]
        try:
            while True:
                reply = find_reply(channel.buffer, device.unit, function, size)
                if reply.pdu is not None:
                    self._quiet_from = time.monotonic()
                    return reply.pdu
                if not await channel.wait_for_data(deadline):
                    self._quiet_from = time.monotonic()
                    if reply.foreign:
                        self._foreign += 1
                        raise ForeignReply(f"unit {device.unit}: {reply.problem}")
                    if reply.problem is not None:
                        raise DeviceError(f"unit {device.unit}: {reply.problem}")
                    raise DeviceTimeout(
                        f"unit {device.unit} on {self.connection.port} did not answer within "
                        f"{device.timeout:g} s"
                    )
        finally:
            if wire is not None:
                wire.sent, wire.received = request, bytes(channel.buffer)
            # What came until now came for this request; what comes after it, nothing
            # asked for (it is counted when the next request drops it).
            channel.discard()


class ModbusRtuDriver(ModbusDriver[ModbusRtuDevice]):
    """Modbus RTU: ``connection: {port, baudrate, parity, bytesize, stopbits, extra_gap}``."""

    name = "modbus-rtu"
    device_model = ModbusRtuDevice

    def link_key(self, device: ModbusRtuDevice) -> str:
        return bus_key(device.connection)

    def check_link(self, devices: Sequence[ModbusRtuDevice]) -> list[str]:
        rtu = list(devices)
        problems = check_bus([(d.id, d.connection) for d in rtu])
        units: dict[int, str] = {}
        for device in rtu:
            if device.unit in units:
                problems.append(
                    f"devices {units[device.unit]!r} and {device.id!r} are both unit "
                    f"{device.unit} on {device.connection.port}: one bus, one unit id each"
                )
            units.setdefault(device.unit, device.id)
            if device.unit == 0:
                problems.append(f"device {device.id!r}: unit 0 is broadcast, it never answers")
            if device.connection.extra_gap != rtu[0].connection.extra_gap:
                problems.append(
                    f"devices {rtu[0].id!r} and {device.id!r} share "
                    f"{device.connection.port} but not its extra_gap"
                )
        return problems

    def open_link(self, key: str, devices: Sequence[ModbusRtuDevice]) -> ModbusRtuLink:
        return ModbusRtuLink(devices[0].connection, devices)
