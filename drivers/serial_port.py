"""Serial ports shared by the serial drivers: settings, bus grouping, and a byte channel.

A port is named by a device path (``/dev/ttyUSB0``) or a ``socket://host:port`` URL of a
TCP serial server; pyserial-asyncio-fast opens either. Devices whose connection names the
same port form one bus: one open port, one request at a time.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Literal, Self, cast

import serial
from pydantic import BaseModel, ConfigDict, Field
from serial_asyncio_fast import create_serial_connection

from drivers.base import LinkError


class SerialConnection(BaseModel):
    """How a serial device is reached: the port and its line settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: str = Field(min_length=1)
    baudrate: int = Field(default=9600, ge=50, le=4_000_000)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    @property
    def bits_per_char(self) -> int:
        """Bits on the wire for one byte: start, data, parity, stop."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def char_time(self) -> float:
        """Seconds one byte takes on the wire."""
        return self.bits_per_char / self.baudrate

    @property
    def line_settings(self) -> tuple[int, int, str, int]:
        """What every device on one bus must agree on."""
        return (self.baudrate, self.bytesize, self.parity, self.stopbits)


def bus_key(connection: SerialConnection) -> str:
    """The link key of a serial port: devices with equal keys share one bus.

    A device path is resolved through symbolic links (``/dev/serial/by-id/...``), so two
    names of one port are one bus.
    """
    port = connection.port
    if "://" in port:
        return port
    return "serial:" + os.path.realpath(port)


def check_bus(connections: Sequence[tuple[str, SerialConnection]]) -> list[str]:
    """Problems with putting these devices (id, connection) on one bus."""
    first_id, first = connections[0]
    problems = []
    for device_id, connection in connections[1:]:
        if connection.line_settings != first.line_settings:
            problems.append(
                f"devices {first_id!r} and {device_id!r} share port {first.port} but their "
                f"serial settings differ ({_settings(first)} and {_settings(connection)}): "
                "one port has one baud rate, parity and framing"
            )
    return problems


def _settings(connection: SerialConnection) -> str:
    return f"{connection.baudrate} {connection.bytesize}{connection.parity}{connection.stopbits}"


class SerialChannel(asyncio.Protocol):
    """An open serial port as a byte buffer that the link reads from.

    Bytes are appended to ``buffer`` as they arrive; ``last_byte_at`` is the monotonic time
    of the newest one (to measure silence on the line). When the port goes away (a USB
    adapter pulled, a serial server closing), ``lost`` says why and every wait ends.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.last_byte_at = 0.0
        self.lost: str | None = None
        self._transport: asyncio.Transport | None = None
        self._arrived = asyncio.Event()

    @classmethod
    async def open(
        cls,
        connection: SerialConnection,
        timeout: float,  # noqa: ASYNC109 (a LinkError naming the port, not a bare TimeoutError)
    ) -> Self:
        """Open the port; LinkError if it cannot be opened within ``timeout``."""
        channel = cls()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await create_serial_connection(
                    loop,
                    lambda: channel,
                    connection.port,
                    baudrate=connection.baudrate,
                    bytesize=connection.bytesize,
                    parity=connection.parity,
                    stopbits=connection.stopbits,
                )
        except TimeoutError:
            raise LinkError(f"cannot open {connection.port}: no answer in {timeout:g} s") from None
        except (OSError, serial.SerialException, ValueError) as exc:
            raise LinkError(f"cannot open {connection.port}: {_reason(exc)}") from None
        # The transport calls connection_made only on the next loop iteration; the port is
        # open now, and a close before then must close it.
        channel._transport = transport
        return channel

    # asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a serial transport is a read-write one (asyncio types the argument as the base)
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.last_byte_at = time.monotonic()
        self._arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = _reason(exc) if exc else "the port was closed"
        self._transport = None
        self._arrived.set()

    # for links -------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._transport is not None and self.lost is None

    def write(self, data: bytes) -> None:
        """Send bytes; LinkError if the port is gone."""
        if self._transport is None or self.lost is not None:
            raise LinkError(self.lost or "the port is not open")
        self._transport.write(data)

    def discard(self) -> int:
        """Drop every byte received so far; how many there were."""
        dropped = len(self.buffer)
        self.buffer.clear()
        self._arrived.clear()
        return dropped

    async def wait_for_data(self, deadline: float) -> bool:
        """Wait until more bytes arrive or the monotonic ``deadline`` passes; False if none.

        Raises LinkError if the port is lost meanwhile.
        """
        self._arrived.clear()
        if self.lost is not None:
            raise LinkError(self.lost)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            async with asyncio.timeout(remaining):
                await self._arrived.wait()
        except TimeoutError:
            return False
        if self.lost is not None:
            raise LinkError(self.lost)
        return True

    def close(self) -> None:
        """Close the port; never raises."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
