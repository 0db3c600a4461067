"""The stream-mode link: the device sends lines by itself, and the port is read all the time.

A poll takes every complete line that arrived since the previous one, counts the unusable
ones, and publishes the newest usable record; if none is there yet it waits for one up to
the timeout, failing as query mode does (DeviceTimeout when the device was silent,
DeviceError when it sent only unusable lines). Values are published once per poll
interval rather than once per line because then the publish rate is bounded by the
configuration whatever the device's line rate, a reading means what it means in query mode
(``good`` = read in the last poll, a timeout = nothing usable within ``timeout``), and
deadband applies as to any device; a poll interval shorter than the device's line period
still gets every line. A stream has no addressing, so a stream-mode device has its port to
itself. The first line after the port opens may be the tail of a line already under way
and is not counted if it does not parse. A line whose bytes stop before its terminator for
longer than a line gap (30 character times, at least 50 ms, 0.5 s for a ``socket://`` port
whose network may pause; never more than the timeout) is dropped as ``partial`` when the
next bytes come, so that a line cut off by a device reset does not run into the next one
and give a wrong value; a cut shorter than that gap still merges, and the merged line is
nearly always garbage.

Writes. The command is sent and nothing is awaited: a reply could not be told from the
stream's lines. The complete lines that arrived before it are dropped, so that the poll
the bridge makes after a write publishes a line sent after the command (a line under way
when the command went out is kept whole, and may still show the old value).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from drivers.base import DeviceError, DeviceTimeout, ReadResult
from drivers.serial_line.config import SerialLineDevice
from drivers.serial_line.framing import LineChannel, LineSplitter, line_gap, no_usable
from drivers.serial_line.link import SerialLineLink
from drivers.serial_line.parsers import record_values


class StreamLink(SerialLineLink):
    """A port carrying one stream-mode instrument's lines."""

    def __init__(self, devices: Sequence[SerialLineDevice]) -> None:
        super().__init__(devices)
        self._stream = next(d for d in self._devices.values() if d.mode == "stream")
        self._splitter = LineSplitter(self._stream.eol_bytes, self._stream.max_line)
        self._polled_at = 0.0

    def _opened(self, channel: LineChannel) -> None:
        channel.eol = self._stream.eol_bytes
        channel.gap = line_gap(self._stream)
        self._splitter = LineSplitter(self._stream.eol_bytes, self._stream.max_line)
        self._synced = False
        self._polled_at = time.monotonic()

    async def _read(self, channel: LineChannel, device: SerialLineDevice) -> ReadResult:
        counts = self._counts[device.id]
        before = replace(counts)
        since = self._polled_at
        try:
            record, last_bad = await self._next_record(
                channel, self._splitter, device, time.monotonic() + device.timeout, newest=True
            )
        finally:
            self._polled_at = time.monotonic()
        if record is not None:
            return record_values(device.points, record)
        if channel.last_byte_at <= since:
            raise DeviceTimeout(f"no line from the device within {device.timeout:g} s")
        raise DeviceError(no_usable("line", device, counts, before, last_bad))

    async def _write(self, channel: LineChannel, device: SerialLineDevice, data: bytes) -> None:
        channel.write(data)
        channel.take_lines(self._splitter, self._counts[device.id])
