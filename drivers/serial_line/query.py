"""The query-mode link: each poll sends the device's command and reads its reply.

A poll drops whatever the port received since the previous poll (a late reply to an
earlier request; an unfinished line there counts as ``partial``), sends the device's
``command`` as it is written (terminator included), and reads lines ending in ``eol``
until one parses as a record or the device's ``timeout`` passes. A line that does not
parse counts as ``garbage``, one longer than ``max_line`` bytes (noticed before its
terminator arrives) as ``overlong``, and bytes still without a terminator at the deadline
as ``partial``; each is skipped, and none ever gives a value. A line equal to the command
(an adapter or device echoing it) is skipped without counting; so are empty lines. If
nothing at all arrived the poll raises DeviceTimeout; if only unusable lines did, it
raises DeviceError naming them and quoting the last. Several query devices may share a
port (an RS-485 line of addressable instruments): each poll is one request and its reply.

Writes. After sending a write command the link waits, up to the device's timeout, for one
reply line and discards it: many instruments acknowledge a setting (``OK``, ``ES``, an
echo of the new value), and that line must not be left for the next poll to trip over. A
device that does not answer writes costs that timeout and is no failure; the bridge reads
the point back by polling anyway. An echo of the command itself and empty lines do not
count as the reply.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from drivers.base import DeviceError, DeviceTimeout, ReadResult
from drivers.serial_line.config import SerialLineDevice
from drivers.serial_line.framing import LineChannel, LineSplitter, no_usable
from drivers.serial_line.link import SerialLineLink
from drivers.serial_line.parsers import record_values


class QueryLink(SerialLineLink):
    """A port of query-mode instruments: one request and its reply at a time."""

    def __init__(self, devices: Sequence[SerialLineDevice]) -> None:
        super().__init__(devices)
        self._last_query: SerialLineDevice | None = None

    def _opened(self, channel: LineChannel) -> None:
        self._last_query = None

    async def _read(self, channel: LineChannel, device: SerialLineDevice) -> ReadResult:
        self._drop_stale(channel, device)
        counts = self._counts[device.id]
        before = replace(counts)
        splitter = LineSplitter(device.eol_bytes, device.max_line)
        self._last_query = device
        sent_at = time.monotonic()
        channel.write(device.command_bytes)
        record, last_bad = await self._next_record(
            channel,
            splitter,
            device,
            sent_at + device.timeout,
            echo=device.command_bytes.removesuffix(device.eol_bytes),
        )
        if record is not None:
            return record_values(device.points, record)
        channel.discard()
        asked = f"{device.command!r}"
        if channel.last_byte_at < sent_at:
            raise DeviceTimeout(f"no reply to {asked} within {device.timeout:g} s")
        raise DeviceError(no_usable(f"reply to {asked}", device, counts, before, last_bad))

    async def _write(self, channel: LineChannel, device: SerialLineDevice, data: bytes) -> None:
        self._drop_stale(channel, device)
        self._last_query = device
        channel.write(data)
        await self._discard_reply(channel, device, data)

    async def _discard_reply(
        self, channel: LineChannel, device: SerialLineDevice, sent: bytes
    ) -> None:
        """Wait up to the timeout for one reply line (not an echo) and drop it."""
        splitter = LineSplitter(device.eol_bytes, device.max_line)
        echo = sent.removesuffix(device.eol_bytes)
        deadline = time.monotonic() + device.timeout
        while True:
            lines, _ = splitter.take(channel.buffer)
            if any(line.strip() and line != echo for line in lines):
                return
            if not await channel.wait_for_data(deadline):
                return

    def _drop_stale(self, channel: LineChannel, device: SerialLineDevice) -> None:
        """Drop what arrived since the last poll; an unfinished line there is a partial one."""
        if channel.buffer:
            # the rest of a reply that came late is the last asked device's
            owner = self._last_query or device
            if not channel.buffer.endswith(owner.eol_bytes):
                self._counts[owner.id].partial += 1
        channel.discard()
