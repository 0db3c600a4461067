"""Modbus request PDUs, and checking a reply PDU against its request, on every transport.

A reply is a value only if it is the answer to this very request: the same function code
(or that code + 0x80 with an exception code), for a read a byte count that fits the
quantity asked for and as many data bytes as the byte count says, for a write the echo
of the address and of the value (or quantity). Anything else is a :class:`ReplyMismatch`,
a device error: a gateway that answers a holding-register read with an input-register
reply, or a device that echoes another address, must never have its data published.

Pure functions on PDUs (function code first, no unit, no CRC, no MBAP header); the
transports check the unit and frame the bytes.
"""

from __future__ import annotations

import struct

from drivers.base import DeviceError

READ_FUNCTIONS = frozenset({1, 2, 3, 4})
BIT_READS = frozenset({1, 2})


EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusRefusal(DeviceError):
    """The device answered a request with a Modbus exception code."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(
            f"device refused: exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})"
        )


class ReplyMismatch(DeviceError):
    """The device answered, but not this request: never a value."""


class ForeignReply(DeviceError):
    """On a shared bus, only another unit's reply came: no sign of the unit asked."""


def read_request(function: int, address: int, count: int) -> bytes:
    """The PDU of a read (function 1-4)."""
    return struct.pack(">BHH", function, address, count)


def write_registers_request(address: int, values: list[int]) -> bytes:
    """Function 6 for one register, 16 for more."""
    if len(values) == 1:
        return struct.pack(">BHH", 6, address, values[0])
    count = len(values)
    return struct.pack(f">BHHB{count}H", 16, address, count, 2 * count, *values)


def write_coil_request(address: int, value: bool) -> bytes:
    """Function 5."""
    return struct.pack(">BHH", 5, address, 0xFF00 if value else 0x0000)


def read_reply(function: int, count: int, reply: bytes) -> list[int] | list[bool]:
    """The registers (functions 3, 4) or bits (1, 2) of a reply to a read of ``count``.

    Raises ModbusRefusal for an exception reply to this function, ReplyMismatch for any
    reply that does not answer this read exactly.
    """
    return read_values(function, count, read_reply_data(function, count, reply))


def read_values(function: int, count: int, data: bytes) -> list[int] | list[bool]:
    """The registers or bits in the data bytes of a checked reply (:func:`read_reply_data`)."""
    if function in BIT_READS:
        return [bool(data[i >> 3] >> (i & 7) & 1) for i in range(count)]
    return list(struct.unpack(f">{count}H", data))


def read_reply_data(function: int, count: int, reply: bytes) -> bytes:
    """The data bytes of a reply to a read of ``count`` (two a register, big-endian, or the
    bits packed eight a byte), checked as :func:`read_reply` checks them."""
    _check_function(function, reply)
    if len(reply) < 2:
        raise ReplyMismatch(f"a reply of {len(reply)} byte(s) to a read of function {function}")
    expected = (count + 7) // 8 if function in BIT_READS else 2 * count
    what = f"{count} {'bit' if function in BIT_READS else 'register'}(s)"
    if reply[1] != expected:
        raise ReplyMismatch(f"byte count {reply[1]} in a reply to a read of {what}")
    data = reply[2:]
    if len(data) != expected:
        raise ReplyMismatch(f"{len(data)} data byte(s) for byte count {expected}")
    return data


def write_reply(request: bytes, reply: bytes) -> None:
    """Check the reply to a write request PDU (function 5, 6, 15 or 16).

    Functions 5 and 6 echo the whole request; 15 and 16 echo its address and quantity.
    Raises as :func:`read_reply`.
    """
    function = request[0]
    _check_function(function, reply)
    echoed = request if function in (5, 6) else request[:5]
    if reply != echoed:
        raise ReplyMismatch(
            f"a write (function {function}) answered with {reply.hex(' ')}, "
            f"not the echo {echoed.hex(' ')}"
        )


def _check_function(function: int, reply: bytes) -> None:
    if not reply:
        raise ReplyMismatch(f"an empty reply to function {function}")
    if reply[0] == function | 0x80:
        if len(reply) != 2:
            raise ReplyMismatch(f"an exception reply of {len(reply)} bytes (2 expected)")
        raise ModbusRefusal(reply[1])
    if reply[0] != function:
        raise ReplyMismatch(f"a reply of function {reply[0]} to a request of function {function}")
