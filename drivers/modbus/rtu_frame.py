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
    counts, so noise that happens to look like a frame start is skipped.
    """
    problem: str | None = None
    foreign = False
    data = bytes(buffer)
    for start in range(len(data) - 1):
        code = data[start + 1]
        if code == function | 0x80:
            length = 5
        elif code == function:
            length = size
            if function <= 4 and start + 2 < len(data) and data[start + 2] != size - 5:
                continue
        else:
            if problem is None and _is_frame_of(data, start, unit, code):
                problem = f"a reply of function {code} to a request of function {function}"
            continue
        candidate = data[start : start + length]
        if len(candidate) < length:
            continue
        if crc16(candidate[:-2]) != struct.unpack("<H", candidate[-2:])[0]:
            problem = problem or "a reply with a bad CRC"
            continue
        if candidate[0] != unit:
            if problem is None:
                problem = f"a reply from unit {candidate[0]} instead of unit {unit}"
                foreign = True
            continue
        return Reply(candidate[1:-2], None)
    if problem is None and data:
        problem = f"{len(data)} byte(s) that are not a reply"
    return Reply(None, problem, foreign)


def _is_frame_of(data: bytes, start: int, unit: int, code: int) -> bool:
    """Whether a whole frame of ``unit`` with function ``code`` (any) starts at ``start``."""
    if data[start] != unit:
        return False
    if code & 0x80:
        length = 5
    elif code <= 4:
        length = 5 + data[start + 2] if start + 2 < len(data) else 0
    else:
        length = 8
    candidate = data[start : start + length]
    return (
        length > 0
        and len(candidate) == length
        and crc16(candidate[:-2]) == struct.unpack("<H", candidate[-2:])[0]
    )


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
