"""Framing of a line protocol: the port's bytes cut into lines, and every unusable line counted.

One owner for what may happen to a line on its way in: a :class:`LineChannel` keeps what
the port received, cuts a line whose bytes stalled for longer than a line gap (``partial``)
and bounds what it keeps (the oldest lines are dropped); a :class:`LineSplitter` cuts
complete lines off the front and drops those longer than ``max_line`` bytes, noticed before
their terminator arrives (``overlong``). :meth:`LineChannel.take_lines` turns what both
dropped into :class:`LineCounts`, and :func:`decode_record` a line into a record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from drivers.serial_line.config import SerialLineDevice
from drivers.serial_line.parsers import Record, parse_line
from drivers.serial_port import SerialChannel

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
        self._cuts_seen = 0
        self._trims_seen = 0

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

    def take_lines(self, splitter: LineSplitter, counts: LineCounts) -> list[bytes]:
        """Complete lines received, counting in ``counts`` what the channel and splitter dropped."""
        cuts = self.cut_lines - self._cuts_seen
        self._cuts_seen = self.cut_lines
        if cuts and splitter.skipping:
            # the line cut off was the over-long one being skipped, counted already
            splitter.skipping = False
            cuts -= 1
        counts.partial += cuts
        if self.trims != self._trims_seen:
            self._trims_seen = self.trims
            if self.midline and not splitter.skipping:
                counts.overlong += 1
            splitter.skipping = self.midline
        lines, overlong = splitter.take(self.buffer)
        counts.overlong += overlong
        return lines


def decode_record(device: SerialLineDevice, line: bytes) -> Record | None:
    """The record a received line (without terminator) holds, or None if it is not one."""
    try:
        text = line.decode(device.encoding)
    except UnicodeDecodeError:
        return None
    return parse_line(device.parse, text)


def line_gap(device: SerialLineDevice) -> float:
    """Silence inside a stream-mode line after which its start is dropped as partial."""
    connection = device.connection
    least = LINE_GAP_NETWORK if "://" in connection.port else LINE_GAP
    return min(device.timeout, max(least, 30 * connection.char_time))


def no_usable(
    what: str,
    device: SerialLineDevice,
    counts: LineCounts,
    before: LineCounts,
    last_bad: bytes | None,
) -> str:
    """The error for a poll that got only unusable lines: what they were, and the last."""
    message = f"no usable {what} within {device.timeout:g} s"
    found = counts.unusable_since(before)
    if found:
        message += f": {found}"
    if last_bad is not None:
        shown = last_bad if len(last_bad) <= 60 else last_bad[:60] + b"..."
        message += f" (last: {shown.decode(device.encoding, 'backslashreplace')!r})"
    return message
