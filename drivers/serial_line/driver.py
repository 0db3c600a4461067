"""The ``serial-line`` driver: line-protocol instruments on a serial port.

Query mode. A poll drops whatever the port received since the previous poll (a late
reply to an earlier request; an unfinished line there counts as ``partial``), sends the
device's ``command`` as it is written (terminator included), and reads lines ending in
``eol`` until one parses as a record or the device's ``timeout`` passes. A line that does
not parse counts as ``garbage``, one longer than ``max_line`` bytes (noticed before its
terminator arrives) as ``overlong``, and bytes still without a terminator at the deadline
as ``partial``; each is skipped, and none ever gives a value. A line equal to the command
(an adapter or device echoing it) is skipped without counting; so are empty lines. If
nothing at all arrived the poll raises DeviceTimeout; if only unusable lines did, it
raises DeviceError naming them and quoting the last. Several query devices may share a
port (an RS-485 line of addressable instruments): each poll is one request and its reply.

Stream mode. The device sends lines by itself and the port is read all the time, between
polls too. A poll takes every complete line that arrived since the previous one, counts
the unusable ones, and publishes the newest usable record; if none is there yet it waits
for one up to the timeout, failing as query mode does (DeviceTimeout when the device was
silent, DeviceError when it sent only unusable lines). Values are published once per
poll interval rather than once per line because then the publish rate is bounded by the
configuration whatever the device's line rate, a reading means what it means in query
mode (``good`` = read in the last poll, a timeout = nothing usable within ``timeout``),
and deadband applies as to any device; a poll interval shorter than the device's line
period still gets every line. A stream has no addressing, so a stream-mode device has its
port to itself. The first line after the port opens may be the tail of a line already
under way and is not counted if it does not parse. A line whose bytes stop before its
terminator for longer than a line gap (30 character times, at least 50 ms, 0.5 s for a
``socket://`` port whose network may pause; never more than the timeout) is dropped as
``partial`` when the next bytes come, so that a line cut off by a device reset does not
run into the next one and give a wrong value; a cut shorter than that gap still merges,
and the merged line is nearly always garbage.

Writes. A point with a ``write`` template is written by sending the template formatted
with the value (in the device's terms: the inverse of scale and offset). In query mode
the link then waits, up to the device's timeout, for one reply line and discards it: many
instruments acknowledge a setting (``OK``, ``ES``, an echo of the new value), and that
line must not be left for the next poll to trip over. A device that does not answer
writes costs that timeout and is no failure; the bridge reads the point back by polling
anyway. An echo of the command itself and empty lines do not count as the reply. In
stream mode the command is sent and nothing is awaited (a reply could not be told from
the stream's lines). A string value must not hold control characters or the device's
``eol``, so that a value can never smuggle a second command onto the line.

Between polls at most a bounded number of bytes is kept (the newest whole lines); with
such a backlog only the newest lines matter anyway. A lost port (adapter unplugged,
serial server gone) raises LinkError; the poller reopens the link.
"""

from __future__ import annotations

import math
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from drivers.base import (
    BadValue,
    DeviceConfig,
    DeviceError,
    DeviceTimeout,
    Driver,
    Link,
    LinkError,
    PointFailure,
    ReadResult,
    Value,
    check_number,
)
from drivers.serial_line.config import SerialLineDevice, SerialLinePoint
from drivers.serial_line.parsers import Record, parse_line, record_values
from drivers.serial_port import SerialChannel, SerialConnection, bus_key, check_bus

#: bytes kept between polls at least (more if lines may be longer)
KEEP_BYTES = 65536

#: least silence inside a stream-mode line that ends it, on a local port and over a network
LINE_GAP = 0.05
LINE_GAP_NETWORK = 0.5


@dataclass(slots=True)
class LineCounts:
    """What one device's lines have been, since the bridge started."""

    lines: int = 0
    garbage: int = 0
    partial: int = 0
    overlong: int = 0

    def unusable_since(self, before: LineCounts) -> str:
        """``2 garbage line(s), 1 partial line(s)``: the unusable lines counted since."""
        found = [
            f"{now - then} {label} line(s)"
            for label, now, then in (
                ("garbage", self.garbage, before.garbage),
                ("over-long", self.overlong, before.overlong),
                ("partial", self.partial, before.partial),
            )
            if now > then
        ]
        return ", ".join(found)


class LineChannel(SerialChannel):
    """A serial channel that bounds what it keeps and cuts lines that stall.

    With ``gap`` set, a line whose bytes stopped for longer than ``gap`` seconds is cut
    off when the next bytes arrive (``cut_lines`` counts them). When more than ``limit``
    bytes wait, the oldest lines are dropped (``trims`` counts the times; ``midline``
    says the kept bytes start inside a line).
    """

    def __init__(self) -> None:
        super().__init__()
        self.eol = b"\n"
        self.limit = KEEP_BYTES
        self.gap: float | None = None
        self.cut_lines = 0
        self.trims = 0
        self.midline = False

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        if self.gap is not None and buffer and time.monotonic() - self.last_byte_at > self.gap:
            end = buffer.rfind(self.eol)
            start = 0 if end < 0 else end + len(self.eol)
            if start < len(buffer):
                del buffer[start:]
                self.cut_lines += 1
        super().data_received(data)
        if len(buffer) > self.limit:
            end = buffer.find(self.eol, len(buffer) - self.limit // 2)
            self.midline = end < 0
            if self.midline:
                # a partial terminator may be the end of what is kept
                del buffer[: len(buffer) - (len(self.eol) - 1)]
            else:
                del buffer[: end + len(self.eol)]
            self.trims += 1


class LineSplitter:
    """Cuts complete lines off the front of a buffer, dropping over-long ones."""

    def __init__(self, eol: bytes, max_line: int) -> None:
        self.eol = eol
        self.max_line = max_line
        self.skipping = False
        """Inside an over-long line (already counted): drop bytes up to its terminator."""

    def take(self, buffer: bytearray) -> tuple[list[bytes], int]:
        """The complete lines (terminator removed), and how many over-long ones were dropped.

        What is taken is removed from ``buffer``; an unfinished line stays.
        """
        eol, size = self.eol, len(self.eol)
        lines: list[bytes] = []
        overlong = 0
        start = 0
        while (end := buffer.find(eol, start)) >= 0:
            if self.skipping:
                self.skipping = False
            elif end - start > self.max_line:
                overlong += 1
            else:
                lines.append(bytes(buffer[start:end]))
            start = end + size
        # The unfinished rest may end with the first bytes of a terminator.
        if not self.skipping and len(buffer) - start > self.max_line + size - 1:
            overlong += 1
            self.skipping = True
        if self.skipping:
            start = max(start, len(buffer) - (size - 1))
        del buffer[:start]
        return lines, overlong

    def pending(self, buffer: bytearray) -> bool:
        """Whether the buffer holds the start of a line (not the rest of an over-long one)."""
        return bool(buffer) and not self.skipping


class SerialLineLink(Link):
    """One serial port and the line instruments on it."""

    def __init__(self, devices: Sequence[DeviceConfig]) -> None:
        typed = [d for d in devices if isinstance(d, SerialLineDevice)]
        assert len(typed) == len(devices) > 0
        self._devices = {d.id: d for d in typed}
        self._connection: SerialConnection = typed[0].connection
        self._open_timeout = max(d.timeout for d in typed)
        self._limit = max(KEEP_BYTES, 4 * max(d.max_line + len(d.eol_bytes) for d in typed))
        self._counts = {d.id: LineCounts() for d in typed}
        self._stream = next((d for d in typed if d.mode == "stream"), None)
        self._channel: LineChannel | None = None
        self._splitter: LineSplitter | None = None
        self._cuts_seen = 0
        self._trims_seen = 0
        self._synced = False
        self._polled_at = 0.0
        self._last_query: SerialLineDevice | None = None

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
        assert isinstance(channel, LineChannel)
        if not channel.is_open:
            channel.close()
            raise LinkError(f"cannot open {self.port}: {channel.lost}")
        channel.limit = self._limit
        channel.eol = next(iter(self._devices.values())).eol_bytes
        if self._stream is not None:
            channel.eol = self._stream.eol_bytes
            channel.gap = line_gap(self._stream)
            self._splitter = LineSplitter(self._stream.eol_bytes, self._stream.max_line)
        self._cuts_seen = self._trims_seen = 0
        self._synced = False
        self._polled_at = time.monotonic()
        self._last_query = None
        self._channel = channel

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def counters(self, device_id: str) -> dict[str, int]:
        counts = self._counts.get(device_id)
        return {} if counts is None else asdict(counts)

    async def read(self, device: DeviceConfig) -> ReadResult:
        assert isinstance(device, SerialLineDevice)
        channel = self._channel
        if channel is None or not channel.is_open:
            lost = channel.lost if channel is not None else None
            raise LinkError(f"{self.port} is lost: {lost}" if lost else f"{self.port} is not open")
        try:
            if device.mode == "stream":
                return await self._read_stream(channel, device)
            return await self._read_query(channel, device)
        except LinkError as exc:
            raise LinkError(f"{self.port} is lost: {exc}") from None

    async def write(self, device: DeviceConfig, point_id: str, value: Value) -> None:
        """Send the point's write command; in query mode take one reply line, if any comes."""
        assert isinstance(device, SerialLineDevice)
        data = write_command(device, point_id, value)
        channel = self._channel
        if channel is None or not channel.is_open:
            lost = channel.lost if channel is not None else None
            raise LinkError(f"{self.port} is lost: {lost}" if lost else f"{self.port} is not open")
        try:
            if device.mode == "stream":
                channel.write(data)
                return
            self._drop_stale(channel, device)
            self._last_query = device
            channel.write(data)
            await self._discard_reply(channel, device, data)
        except LinkError as exc:
            raise LinkError(f"{self.port} is lost: {exc}") from None

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

    # query mode ------------------------------------------------------------------------

    async def _read_query(
        self, channel: LineChannel, device: SerialLineDevice
    ) -> dict[str, Value | PointFailure]:
        self._drop_stale(channel, device)
        counts = self._counts[device.id]
        before = replace(counts)
        splitter = LineSplitter(device.eol_bytes, device.max_line)
        echo = device.command_bytes.removesuffix(device.eol_bytes)
        self._last_query = device
        sent_at = time.monotonic()
        channel.write(device.command_bytes)
        deadline = sent_at + device.timeout
        last_bad: bytes | None = None
        while True:
            for line in self._take(channel, splitter, counts):
                if line == echo:
                    continue
                record = self._record(device, line)
                if record is None:
                    if line.strip():
                        counts.garbage += 1
                        last_bad = line
                    continue
                counts.lines += 1
                return record_values(device.points, record)
            if not await channel.wait_for_data(deadline):
                break
        if splitter.pending(channel.buffer):
            counts.partial += 1
            last_bad = bytes(channel.buffer)
        channel.discard()
        asked = f"{device.command!r}"
        if channel.last_byte_at < sent_at:
            raise DeviceTimeout(f"no reply to {asked} within {device.timeout:g} s")
        raise DeviceError(_no_usable(f"reply to {asked}", device, counts, before, last_bad))

    def _drop_stale(self, channel: LineChannel, device: SerialLineDevice) -> None:
        """Drop what arrived since the last poll; an unfinished line there is a partial one."""
        if channel.buffer:
            # the rest of a reply that came late is the last asked device's
            owner = self._last_query or device
            if not channel.buffer.endswith(owner.eol_bytes):
                self._counts[owner.id].partial += 1
        channel.discard()

    # stream mode -----------------------------------------------------------------------

    async def _read_stream(
        self, channel: LineChannel, device: SerialLineDevice
    ) -> dict[str, Value | PointFailure]:
        splitter = self._splitter
        assert splitter is not None
        counts = self._counts[device.id]
        before = replace(counts)
        since = self._polled_at
        deadline = time.monotonic() + device.timeout
        last_bad: bytes | None = None
        try:
            while True:
                newest: Record | None = None
                for line in self._take(channel, splitter, counts):
                    record = self._record(device, line)
                    synced, self._synced = self._synced, True
                    if record is None:
                        if line.strip() and synced:
                            counts.garbage += 1
                            last_bad = line
                        continue
                    counts.lines += 1
                    newest = record
                if newest is not None:
                    return record_values(device.points, newest)
                if not await channel.wait_for_data(deadline):
                    break
        finally:
            self._polled_at = time.monotonic()
        if splitter.pending(channel.buffer):
            counts.partial += 1
            last_bad = bytes(channel.buffer)
            channel.discard()
        if channel.last_byte_at <= since:
            raise DeviceTimeout(f"no line from the device within {device.timeout:g} s")
        raise DeviceError(_no_usable("line", device, counts, before, last_bad))

    # both ------------------------------------------------------------------------------

    def _take(
        self, channel: LineChannel, splitter: LineSplitter, counts: LineCounts
    ) -> list[bytes]:
        """Complete lines from the channel, counting what the channel and splitter dropped."""
        cuts = channel.cut_lines - self._cuts_seen
        self._cuts_seen = channel.cut_lines
        if cuts and splitter.skipping:
            # the line cut off was the over-long one being skipped, counted already
            splitter.skipping = False
            cuts -= 1
        counts.partial += cuts
        if channel.trims != self._trims_seen:
            self._trims_seen = channel.trims
            if channel.midline and not splitter.skipping:
                counts.overlong += 1
            splitter.skipping = channel.midline
        lines, overlong = splitter.take(channel.buffer)
        counts.overlong += overlong
        return lines

    @staticmethod
    def _record(device: SerialLineDevice, line: bytes) -> Record | None:
        try:
            text = line.decode(device.encoding)
        except UnicodeDecodeError:
            return None
        return parse_line(device.parse, text)


def write_command(device: SerialLineDevice, point_id: str, value: Value) -> bytes:
    """The bytes that write ``value`` to a point; BadValue if the point cannot take it."""
    point = next((p for p in device.points if p.id == point_id), None)
    if point is None:
        raise BadValue(f"device {device.id!r} has no point {point_id!r}")
    if point.write is None:
        raise BadValue(f"point {point_id!r} has no write command")
    raw = device_value(point, value, device.eol)
    try:
        return point.write.format(value=raw).encode(device.encoding)
    except UnicodeEncodeError:
        raise BadValue(
            f"{value!r} cannot be sent to point {point_id!r} in encoding {device.encoding!r}"
        ) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadValue(f"{value!r} does not fit the write command of {point_id!r}: {exc}") from None


def device_value(point: SerialLinePoint, value: Value, eol: str) -> Value:
    """What ``{value}`` stands for in the command: the value checked, in the device's terms."""
    if point.type == "bool":
        if not isinstance(value, bool):
            raise BadValue(f"point {point.id!r} takes true or false, not {value!r}")
        return value
    if point.type == "str":
        if not isinstance(value, str):
            raise BadValue(f"point {point.id!r} takes a string, not {value!r}")
        if eol in value or any(unicodedata.category(c) == "Cc" for c in value):
            raise BadValue(f"a value for point {point.id!r} must not hold control characters")
        return value
    value = check_number(point.id, value, point.min, point.max)
    scaled = not (point.scale == 1 and point.offset == 0)
    try:
        raw = (value - point.offset) / point.scale if scaled else value
        if point.type == "int":
            if not scaled and isinstance(raw, float) and not raw.is_integer():
                raise BadValue(f"point {point.id!r} takes a whole number, not {value!r}")
            return round(raw)
        raw = float(raw)
    except OverflowError:
        raise BadValue(f"{value!r} is out of range for point {point.id!r}") from None
    if not math.isfinite(raw):
        raise BadValue(f"{value!r} is out of range for point {point.id!r}")
    # 12 significant digits: (12.3 - 0) / 0.1 is 123, not 122.99999999999999
    return float(f"{raw:.12g}") if scaled else raw


def line_gap(device: SerialLineDevice) -> float:
    """Silence inside a stream-mode line after which its start is dropped as partial."""
    connection = device.connection
    least = LINE_GAP_NETWORK if "://" in connection.port else LINE_GAP
    return min(device.timeout, max(least, 30 * connection.char_time))


def _no_usable(
    what: str,
    device: SerialLineDevice,
    counts: LineCounts,
    before: LineCounts,
    last_bad: bytes | None,
) -> str:
    message = f"no usable {what} within {device.timeout:g} s"
    found = counts.unusable_since(before)
    if found:
        message += f": {found}"
    if last_bad is not None:
        shown = last_bad if len(last_bad) <= 60 else last_bad[:60] + b"..."
        message += f" (last: {shown.decode(device.encoding, 'backslashreplace')!r})"
    return message


class SerialLineDriver(Driver):
    """Line-protocol instruments: ``connection: {port, baudrate, ...}``, one link per port."""

    name = "serial-line"
    device_model = SerialLineDevice

    def link_key(self, device: DeviceConfig) -> str:
        assert isinstance(device, SerialLineDevice)
        return bus_key(device.connection)

    def check_link(self, devices: Sequence[DeviceConfig]) -> list[str]:
        typed = [d for d in devices if isinstance(d, SerialLineDevice)]
        problems = check_bus([(d.id, d.connection) for d in typed])
        streams = [d for d in typed if d.mode == "stream"]
        port = typed[0].connection.port
        if len(streams) > 1:
            names = " and ".join(repr(d.id) for d in streams)
            problems.append(
                f"devices {names} both stream on port {port}: a stream has no addressing, "
                "so one port carries one stream"
            )
        elif streams and len(typed) > 1:
            others = ", ".join(repr(d.id) for d in typed if d.mode != "stream")
            problems.append(
                f"device {streams[0].id!r} streams on port {port}, which {others} also "
                "use(s): a stream-mode device needs its port to itself (its lines cannot be "
                "told from replies, and every query drops what is waiting)"
            )
        return problems

    def open_link(self, key: str, devices: Sequence[DeviceConfig]) -> Link:
        return SerialLineLink(devices)

    def check_write(self, device: DeviceConfig, point_id: str, value: Value) -> None:
        assert isinstance(device, SerialLineDevice)
        write_command(device, point_id, value)

    def describe(self, device: DeviceConfig) -> list[str]:
        assert isinstance(device, SerialLineDevice)
        points = f"parse {device.parse.kind}, {len(device.points)} point(s)"
        writes = [f"writes {p.id} with {p.write!r}" for p in device.points if p.write]
        if device.mode == "stream":
            return [f"stream of lines ending {device.eol!r}, {points}", *writes]
        return [f"query {device.command!r}, {points}", *writes]
