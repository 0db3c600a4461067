"""Replies that answer another request than the one asked: a fault switch of the simulator.

A device, or a TCP-to-RTU gateway, may answer with a well-formed frame that does not fit
the request: another function code, a byte count that is not the quantity asked for, one
register more, or a write echo of another address or value. Every such reply is framed
correctly (MBAP length, RTU CRC), so only a client that checks it against its request
notices. :func:`mangle` turns a correct reply PDU into one of these.
"""

from __future__ import annotations

import struct
from typing import Final, Literal

ReplyFault = Literal["function", "byte_count", "quantity", "echo_address", "echo_value"]
REPLY_FAULTS: Final[tuple[ReplyFault, ...]] = (
    "function", "byte_count", "quantity", "echo_address", "echo_value",
)  # fmt: skip

#: the read whose answer stands in for a read with ``function`` (fault ``function``)
SIBLING_READ: Final = {1: 2, 2: 1, 3: 4, 4: 3}
_SIBLING_WRITE: Final = {5: 15, 15: 5, 6: 16, 16: 6}


def mangle(fault: ReplyFault, reply: bytes) -> bytes:
    """The reply PDU ``reply`` (not an exception) as the faulty device sends it.

    ``function``: a write's reply carries the code of the other write (a read is answered
    from the sibling table instead, see :data:`SIBLING_READ`, by the simulator).
    ``byte_count``: a read's byte count is one more than its data. ``quantity``: a read
    carries one register (or eight bits) more than asked, with a byte count to match.
    ``echo_address``, ``echo_value``: a write echoes address + 1, or another value (or
    quantity). A fault that does not apply to the reply leaves it as it is.
    """
    function = reply[0]
    if function in SIBLING_READ:
        if fault == "byte_count":
            return bytes((function, reply[1] + 1)) + reply[2:]
        if fault == "quantity":
            extra = b"\x00" if function in (1, 2) else b"\x12\x34"
            return bytes((function, reply[1] + len(extra))) + reply[2:] + extra
        return reply
    if function not in _SIBLING_WRITE or len(reply) != 5:
        return reply
    address, value = struct.unpack(">HH", reply[1:5])
    if fault == "function":
        return bytes((_SIBLING_WRITE[function],)) + reply[1:]
    if fault == "echo_address":
        return struct.pack(">BHH", function, (address + 1) & 0xFFFF, value)
    if fault == "echo_value":
        other = {0xFF00: 0x0000, 0x0000: 0xFF00}.get(value) if function == 5 else None
        return struct.pack(">BHH", function, address, other if other is not None else value ^ 1)
    return reply
