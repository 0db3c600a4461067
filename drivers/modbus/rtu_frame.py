"""Modbus RTU framing: CRC-16, request frames, and finding a reply among stray bytes.

Pure functions; the RTU link does the timing and the I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def frame(unit: int, pdu: bytes) -> bytes:
    """An RTU frame: unit, PDU, CRC low byte first."""
    body = bytes((unit,)) + pdu
    return body + struct.pack("<H", crc16(body))


def reply_size(function: int, count: int) -> int:
    """Bytes of a normal RTU reply to a read (1-4) or write (5, 6, 15, 16) request."""
    if function in (1, 2):
        return 5 + (count + 7) // 8
    if function in (3, 4):
        return 5 + 2 * count
    return 8


@dataclass(frozen=True, slots=True)
class Reply:
    """What was found in the received bytes.

    ``pdu`` is the matching reply's PDU (function code first), or None; ``problem`` says
    what unusable frames were seen instead (a bad CRC, another unit's reply, a malformed
    one), for the error message when no good reply comes. ``foreign``: that problem is
    a whole, good frame of another unit, which on a shared bus says nothing of the unit
    asked (a reply that came after its own request timed out, or another master's).
    """

    pdu: bytes | None
    problem: str | None
    foreign: bool = False


def find_reply(buffer: bytes | bytearray, unit: int, function: int, size: int) -> Reply:
    """Look for the reply of ``unit`` to ``function`` in ``buffer``, skipping stray bytes.

    A normal reply is ``size`` bytes (see :func:`reply_size`) and, for reads, its byte count
    must be ``size - 5``; an exception reply is 5 bytes. Only a frame whose CRC is right
    counts, so noise that happens to look like a frame start is skipped. A whole, good
    frame of another unit is skipped, and what its bytes look like is not a problem of
    the unit asked; when nothing else was wrong, it is the problem, ``foreign``.
    """
    problem: str | None = None  # about the unit asked, or what could be its reply
    foreign: str | None = None  # the first whole, good frame of another unit
    inside = 0  # what starts before this is inside another unit's whole frame
    data = bytes(buffer)
    for at in range(len(data) - 1):
        if data[at] != unit and (whole := _frame_length(data, at)):
            foreign = foreign or f"a reply from unit {data[at]} instead of unit {unit}"
            inside = max(inside, at + whole)
            continue
        code = data[at + 1]
        if code == function | 0x80:
            length = 5
        elif code == function:
            length = size
            if function <= 4 and at + 2 < len(data) and data[at + 2] != size - 5:
                continue
        else:
            if problem is None and at >= inside and data[at] == unit and _frame_length(data, at):
                problem = f"a reply of function {code} to a request of function {function}"
            continue
        candidate = data[at : at + length]
        if len(candidate) < length:
            continue
        if crc16(candidate[:-2]) != struct.unpack("<H", candidate[-2:])[0]:
            if at >= inside:  # bytes of another unit's frame are not a garbled reply
                problem = problem or "a reply with a bad CRC"
            continue
        if candidate[0] == unit:  # always: another unit's whole frame went above
            return Reply(candidate[1:-2], None)
    if problem is None and foreign is not None:
        return Reply(None, foreign, foreign=True)
    if problem is None and data:
        problem = f"{len(data)} byte(s) that are not a reply"
    return Reply(None, problem)


def _frame_length(data: bytes, start: int) -> int:
    """The length of the whole reply frame with a right CRC starting at ``start`` (any
    unit; its length from its function code and byte count), or 0 if none does."""
    if start + 1 >= len(data):
        return 0
    code = data[start + 1]
    if code & 0x80:
        length = 5
    elif code <= 4:
        length = 5 + data[start + 2] if start + 2 < len(data) else 0
    elif code in (5, 6, 15, 16):
        length = 8
    else:
        return 0
    candidate = data[start : start + length]
    good = len(candidate) == length and crc16(candidate[:-2]) == int.from_bytes(
        candidate[-2:], "little"
    )
    return length if length and good else 0


FUNCTION_NAMES = {
    1: "read coils",
    2: "read discrete inputs",
    3: "read holding",
    4: "read input",
    5: "write coil",
    6: "write register",
    15: "write coils",
    16: "write registers",
}


def describe_pdu(pdu: bytes) -> str:
    """A request PDU for people, e.g. ``read holding 0..8 (fc 3)``, ``write register 20``."""
    function = pdu[0]
    name = FUNCTION_NAMES.get(function, "function")
    if len(pdu) < 5:
        return f"{name} (fc {function})"
    address, count = struct.unpack(">HH", pdu[1:5])
    if function in (1, 2, 3, 4, 15, 16):
        return f"{name} {address}..{address + count - 1} (fc {function})"
    return f"{name} {address} (fc {function})"
