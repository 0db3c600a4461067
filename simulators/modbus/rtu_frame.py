"""Modbus RTU frames as the simulated bus sees them: CRC-16/Modbus, framing, sizing.

A frame is ``unit id, PDU, CRC-16/Modbus`` (reflected polynomial 0xA001, initial value
0xFFFF, low byte first); written here independently of ``drivers/``. A pty carries no
timing, so requests are framed by length, known from the function code, not by the
3.5-character silence of a real line.
"""

from __future__ import annotations

from typing import Final

#: the longest RTU frame: unit, 253-byte PDU, CRC
MAX_FRAME: Final = 256
#: the shortest: unit, function code, CRC
MIN_FRAME: Final = 4
#: received bytes kept while looking for a frame; older ones are dropped as garbage
_MAX_BUFFER: Final = 2 * MAX_FRAME


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/Modbus of ``data``; sent low byte first. Over a frame *with* its CRC it
    gives 0, which is how a frame is checked."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def rtu_frame(unit: int, pdu: bytes) -> bytes:
    """``unit + pdu + CRC``: a complete RTU frame."""
    body = bytes([unit]) + pdu
    return body + crc16(body).to_bytes(2, "little")


def request_length(buffer: bytes | bytearray, start: int = 0) -> int | None:
    """Length of the request starting at ``buffer[start]``, told by its function code.

    None while too few bytes are there to tell; 0 when no valid request starts there
    (an impossible length, or a function code this server cannot size: those are
    found by their CRC instead, see :meth:`ModbusRtuServer._parse`).
    """
    if len(buffer) - start < 2:
        return None
    function = buffer[start + 1]
    if 1 <= function <= 6:
        return 8
    if function in (15, 16):
        if len(buffer) - start < 7:
            return None
        length = 9 + buffer[start + 6]  # unit, fc, address, count, byte count, data, CRC
        return length if length <= MAX_FRAME else 0
    return 0


def length_by_crc(rx: bytearray) -> int:
    """The shortest prefix of ``rx`` that is a frame with a valid CRC, or 0."""
    crc = 0xFFFF
    for index, byte in enumerate(rx[:MAX_FRAME]):
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
        if crc == 0 and index + 1 >= MIN_FRAME:
            return index + 1
    return 0
