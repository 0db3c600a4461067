"""What a ``serial-line`` link does in either mode: the port, the counts, reading a record.

A link is a :class:`~drivers.serial_line.query.QueryLink` or a
:class:`~drivers.serial_line.stream.StreamLink`, chosen when the driver opens it (a
stream-mode device has its port to itself). Both keep at most a bounded number of bytes
between polls (the newest whole lines; with such a backlog only the newest lines matter
anyway), and a lost port (adapter unplugged, serial server gone) raises LinkError; the
poller reopens the link.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Coroutine, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

from drivers.base import DriverError, Exchange, Link, LinkError, ReadResult, Tap, Value
from drivers.serial_line.config import SerialLineDevice
from drivers.serial_line.framing import (
    KEEP_BYTES,
    LineChannel,
    LineCounts,
    LineSplitter,
    decode_record,
)
from drivers.serial_line.parsers import Record
from drivers.serial_line.writes import write_command

T = TypeVar("T")


class SerialLineLink(Link[SerialLineDevice]):
    """One serial port and the line instruments on it."""

    def __init__(self, devices: Sequence[SerialLineDevice]) -> None:
        typed = list(devices)
        self._devices = {d.id: d for d in typed}
        self._connection = typed[0].connection
        self._open_timeout = max(d.timeout for d in typed)
        self._limit = max(KEEP_BYTES, 4 * max(d.max_line + len(d.eol_bytes) for d in typed))
        self._counts = {d.id: LineCounts() for d in typed}
        self._channel: LineChannel | None = None
        self._synced = True
        """Whether the next line is whole (not the tail of one under way at open)."""
        self._heard: list[bytes] | None = None
        """The bytes received for the exchange under way, while a tap is attached."""

    @property
    def port(self) -> str:
        return self._connection.port

    @property
    def is_open(self) -> bool:
        return self._channel is not None and self._channel.is_open

    @property
    def buffered(self) -> int:
        """Bytes received that no poll has taken yet (0 while closed)."""
        return 0 if self._channel is None else len(self._channel.buffer)

    async def open(self) -> None:
        await self.close()
        channel = await LineChannel.open(self._connection, self._open_timeout)
        if not channel.is_open:
            channel.close()
            raise LinkError(f"cannot open {self.port}: {channel.lost}")
        channel.limit = self._limit
        channel.eol = next(iter(self._devices.values())).eol_bytes
        self._opened(channel)
        self._channel = channel

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def counters(self, device_id: str) -> dict[str, int]:
        counts = self._counts.get(device_id)
        return {} if counts is None else asdict(counts)

    async def read(self, device: SerialLineDevice) -> ReadResult:
        tap = self.tap
        if tap is not None:
            query = device.mode == "query"
            sent = device.command_bytes if query else b""
            what = f"query {device.command!r}" if query else "take the newest line"
            return await self._tapped(tap, device, what, sent, self._read_live(device))
        return await self._read_live(device)

    async def _read_live(self, device: SerialLineDevice) -> ReadResult:
        channel = self._live()
        try:
            return await self._read(channel, device)
        except LinkError as exc:
            raise LinkError(f"{self.port} is lost: {exc}") from None

    async def write(self, device: SerialLineDevice, point_id: str, value: Value) -> None:
        data = write_command(device, point_id, value)
        tap = self.tap
        if tap is not None:
            what = f"write {point_id} {data!r}"
            await self._tapped(tap, device, what, data, self._write_live(device, data))
        else:
            await self._write_live(device, data)

    async def _write_live(self, device: SerialLineDevice, data: bytes) -> None:
        channel = self._live()
        try:
            await self._write(channel, device, data)
        except LinkError as exc:
            raise LinkError(f"{self.port} is lost: {exc}") from None

    async def _tapped(
        self,
        tap: Tap,
        device: SerialLineDevice,
        what: str,
        sent: bytes,
        exchange: Coroutine[Any, Any, T],
    ) -> T:
        """Run ``exchange``, reporting what was sent and every line heard to the tap."""
        heard: list[bytes] = []
        self._heard = heard
        started, begun = time.time(), time.perf_counter()
        error = None
        try:
            return await exchange
        except DriverError as exc:
            error = str(exc)
            raise
        finally:
            self._heard = None
            tail = b"" if self._channel is None else bytes(self._channel.buffer)
            tap.record(
                Exchange(
                    device=device.id,
                    request=what,
                    sent=sent,
                    received=b"".join(heard) + tail,
                    started=started,
                    duration=time.perf_counter() - begun,
                    error=error,
                )
            )

    def _live(self) -> LineChannel:
        channel = self._channel
        if channel is None or not channel.is_open:
            lost = channel.lost if channel is not None else None
            raise LinkError(f"{self.port} is lost: {lost}" if lost else f"{self.port} is not open")
        return channel

    @abstractmethod
    def _opened(self, channel: LineChannel) -> None:
        """Set the channel up for this mode, and forget what the last one held."""

    @abstractmethod
    async def _read(self, channel: LineChannel, device: SerialLineDevice) -> ReadResult:
        """One poll of the device on the live channel."""

    @abstractmethod
    async def _write(self, channel: LineChannel, device: SerialLineDevice, data: bytes) -> None:
        """Send a write command on the live channel."""

    async def _next_record(
        self,
        channel: LineChannel,
        splitter: LineSplitter,
        device: SerialLineDevice,
        deadline: float,
        *,
        echo: bytes | None = None,
        newest: bool = False,
    ) -> tuple[Record | None, bytes | None]:
        """The first usable record to arrive (the newest of those waiting, with ``newest``),
        or None at the deadline; and the last unusable line, if any.

        A line equal to ``echo`` and empty lines are skipped without counting; lines that
        do not parse count as ``garbage`` (but for the tail of a line under way when the
        port opened), and an unfinished line at the deadline as ``partial``.
        """
        counts = self._counts[device.id]
        last_bad: bytes | None = None
        heard = self._heard
        while True:
            found: Record | None = None
            for line in channel.take_lines(splitter, counts):
                if heard is not None:
                    heard.append(line + device.eol_bytes)
                if line == echo:
                    continue
                record = decode_record(device, line)
                synced, self._synced = self._synced, True
                if record is None:
                    if line.strip() and synced:
                        counts.garbage += 1
                        last_bad = line
                    continue
                counts.lines += 1
                found = record
                if not newest:
                    break
            if found is not None:
                return found, last_bad
            if not await channel.wait_for_data(deadline):
                break
        if splitter.pending(channel.buffer):
            counts.partial += 1
            last_bad = bytes(channel.buffer)
            if heard is not None:
                heard.append(last_bad)
            channel.discard()
        return None, last_bad
