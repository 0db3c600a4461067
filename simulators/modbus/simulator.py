"""The Modbus PDU server: several simulated units answering request PDUs, with faults.

A :class:`ModbusSimulator` answers request PDUs (function code + data, no framing) for
several units. The TCP server (:mod:`simulators.modbus.tcp`) and the RTU server on a pty
(:mod:`simulators.modbus.rtu`) wrap it with their own framing.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from simulators.modbus.generated import GeneratedValue
from simulators.modbus.reply_faults import SIBLING_READ, ReplyFault, mangle
from simulators.modbus.unit import ModbusDeviceState, check_span
from simulators.modbus.values import (
    BIT_TABLES,
    TABLE_SIZE,
    Order,
    Table,
    ValueType,
    register_width,
)
from simulators.waveforms import Generator

ILLEGAL_FUNCTION: Final = 1
ILLEGAL_DATA_ADDRESS: Final = 2
ILLEGAL_DATA_VALUE: Final = 3

MAX_READ_REGISTERS: Final = 125
MAX_READ_BITS: Final = 2000
MAX_WRITE_REGISTERS: Final = 123
MAX_WRITE_BITS: Final = 1968

#: the table each supported function code reads or writes
FUNCTION_TABLE: Final[dict[int, Table]] = {
    1: "coil", 2: "discrete", 3: "holding", 4: "input",
    5: "coil", 6: "holding", 15: "coil", 16: "holding",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as received. ``count`` is 1 for single writes and 0 when the PDU was
    too short to carry it; ``time`` is the simulator's clock."""

    unit: int
    function: int
    address: int
    count: int
    time: float


@dataclass(frozen=True, slots=True)
class ExceptionRule:
    """Answer ``code`` to any request of ``unit`` (None: every unit) touching the range."""

    table: Table
    start: int
    end: int
    code: int
    unit: int | None = None


@dataclass(slots=True)
class LostReplies:
    """The next ``count`` answers to requests of ``unit`` (None: every unit) touching the
    range are not sent, as a noisy line loses them; the request is still carried out."""

    table: Table
    start: int
    end: int
    count: int
    unit: int | None = None


class _ModbusException(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class ModbusSimulator:
    """Several Modbus units behind one address (a TCP gateway, or one RS-485 bus).

    Fault switches, read by the transport or by :meth:`handle` on every request, so tests
    may flip them at any time:

    - ``delay``: seconds the transport waits before sending each answer;
    - ``silent``: answer nothing at all;
    - ``garbage``: bytes the transport sends instead of each framed answer;
    - ``unreadable``: ``(table, start, end_inclusive)`` ranges answering exception 2 to
      reads of every unit (each unit has its own list too);
    - :meth:`exception_for`: an arbitrary exception code for a range;
    - :meth:`lose_replies_for`: the next answers to requests touching a range are lost;
    - ``reply_fault``: answers that fit another request (see
      :mod:`simulators.modbus.reply_faults`): ``function`` (a read answered from the
      sibling table with its code), ``byte_count``, ``quantity``, ``echo_address``,
      ``echo_value``;
    - :meth:`drop_connections`: the TCP server closes every open connection;
    - a unit id missing from ``units`` is mute.

    Every request is appended to ``requests`` before any fault applies; the list keeps
    the latest ``max_logged`` to at most twice that (trimmed in chunks).
    """

    def __init__(
        self,
        units: Mapping[int, ModbusDeviceState] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_logged: int = 10_000,
    ) -> None:
        self.units: dict[int, ModbusDeviceState] = dict(units or {})
        self.clock = clock
        self.delay = 0.0
        self.silent = False
        self.garbage: bytes | None = None
        self.reply_fault: ReplyFault | None = None
        self.unreadable: list[tuple[Table, int, int]] = []
        self.exceptions: list[ExceptionRule] = []
        self.lost_replies: list[LostReplies] = []
        self.requests: list[LoggedRequest] = []
        self.generated: list[GeneratedValue] = []
        self.max_logged = max_logged
        self._drop_listeners: list[Callable[[], None]] = []

    def add_unit(self, unit: int, state: ModbusDeviceState | None = None) -> ModbusDeviceState:
        """Make ``unit`` answer, with ``state`` or fresh zeroed tables; returns its state."""
        if not 0 <= unit <= 255:
            raise ValueError(f"unit id must be 0..255, not {unit}")
        self.units[unit] = state if state is not None else ModbusDeviceState()
        return self.units[unit]

    # faults ---------------------------------------------------------------------------

    def exception_for(
        self, table: Table, start: int, end: int, code: int, *, unit: int | None = None
    ) -> None:
        """Answer exception ``code`` to reads and writes touching ``start..end`` (inclusive)."""
        if not 1 <= code <= 255:
            raise ValueError(f"exception code must be 1..255, not {code}")
        self.exceptions.append(ExceptionRule(table, start, end, code, unit))

    def lose_replies_for(
        self, table: Table, start: int, end: int, count: int = 1, *, unit: int | None = None
    ) -> None:
        """Send no answer to the next ``count`` requests touching ``start..end``
        (inclusive) of ``table``: a lost reply, which the client sees as a timeout."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        self.lost_replies.append(LostReplies(table, start, end, count, unit))

    def clear_faults(self) -> None:
        """Switch every fault off (the units' own ``unreadable`` ranges stay)."""
        self.delay = 0.0
        self.silent = False
        self.garbage = None
        self.reply_fault = None
        self.unreadable.clear()
        self.exceptions.clear()
        self.lost_replies.clear()

    def drop_connections(self) -> None:
        """Ask every transport to close its open connections now (RTU ignores it)."""
        for listener in list(self._drop_listeners):
            listener()

    def on_drop(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` on :meth:`drop_connections`; returns the function that
        unregisters it. For transports."""
        self._drop_listeners.append(listener)
        return lambda: self._drop_listeners.remove(listener)

    def clear_requests(self) -> None:
        """Forget the logged requests."""
        self.requests.clear()

    # moving values --------------------------------------------------------------------

    def attach(
        self,
        unit: int,
        table: Table,
        address: int,
        type: ValueType,
        generator: Generator,
        *,
        byte_order: Order = "big",
        word_order: Order = "big",
        epoch: float | None = None,
    ) -> GeneratedValue:
        """Drive a typed value of ``unit`` by ``generator``, time counted from ``epoch``
        (default: now). Integer types take the rounded value, wrapped like a register
        overflowing; a bit is on when the rounded value is odd, so a counter blinks.
        The value is written at once, then again before every read."""
        if unit not in self.units:
            raise ValueError(f"unit {unit} does not exist")
        if type == "string":
            raise ValueError("a generator produces numbers, not strings")
        if (table in BIT_TABLES) != (type == "bool"):
            raise ValueError(f"type {type} does not fit table {table}")
        check_span(address, register_width(type))
        binding = GeneratedValue(
            unit, table, address, type, generator, byte_order, word_order,
            self.clock() if epoch is None else epoch,
        )  # fmt: skip
        self.generated.append(binding)
        self._update(binding, self.clock())
        return binding

    def tick(self, now: float | None = None) -> None:
        """Recompute every generated value for time ``now`` (default: the clock)."""
        now = self.clock() if now is None else now
        for binding in self.generated:
            self._update(binding, now)

    def _update(self, binding: GeneratedValue, now: float) -> None:
        state = self.units.get(binding.unit)
        if state is not None:
            binding.write(state, now)

    # requests -------------------------------------------------------------------------

    def handle(self, unit: int, pdu: bytes) -> bytes | None:
        """Answer one request PDU of ``unit``: the response PDU, or None to stay silent.

        Exceptions follow the spec: 1 for an unsupported function, 3 for a bad count,
        value or length, 2 for addresses past the table or in an unreadable range, or
        the code set by :meth:`exception_for`. ``delay`` and ``garbage`` are applied by
        the transport.
        """
        if not pdu:
            return None
        function = pdu[0]
        address, count = _peek(function, pdu)
        self.requests.append(LoggedRequest(unit, function, address, count, self.clock()))
        if len(self.requests) > 2 * self.max_logged:
            del self.requests[: len(self.requests) - self.max_logged]
        if self.silent:
            return None
        state = self.units.get(unit)
        if state is None:
            return None
        fault = self.reply_fault
        if fault == "function" and function in SIBLING_READ:
            pdu = bytes((SIBLING_READ[function],)) + pdu[1:]
        try:
            response = self._dispatch(unit, state, pdu[0], pdu)
        except _ModbusException as error:
            response = bytes([function | 0x80, error.code])
        else:
            response = response if fault is None else mangle(fault, response)
        if self.lost_replies and self._lost(unit, function, address, count):
            return None
        return response

    def _lost(self, unit: int, function: int, address: int, count: int) -> bool:
        """Whether a lost-replies rule takes this answer (and counts it)."""
        table = FUNCTION_TABLE.get(function)
        last = address + max(count, 1) - 1
        for rule in self.lost_replies:
            if (
                rule.count
                and rule.table == table
                and rule.unit in (None, unit)
                and rule.start <= last
                and address <= rule.end
            ):
                rule.count -= 1
                return True
        return False

    def _dispatch(self, unit: int, state: ModbusDeviceState, function: int, pdu: bytes) -> bytes:
        table = FUNCTION_TABLE.get(function)
        if table is None:
            raise _ModbusException(ILLEGAL_FUNCTION)
        if function in (1, 2, 3, 4):
            address, count = _fields(pdu, 5)
            limit = MAX_READ_BITS if table in BIT_TABLES else MAX_READ_REGISTERS
            self._check(unit, state, table, address, count, limit, read=True)
            self.tick()
            if table in BIT_TABLES:
                data = _pack_bits(state.get_bits(table, address, count))
            else:
                data = struct.pack(f">{count}H", *state.get_registers(table, address, count))
            return bytes([function, len(data)]) + data
        if function == 5:
            address, value = _fields(pdu, 5)
            if value not in (0xFF00, 0x0000):
                raise _ModbusException(ILLEGAL_DATA_VALUE)
            self._check(unit, state, table, address, 1, 1, read=False)
            state.set_bits(table, address, [value == 0xFF00])
            return pdu
        if function == 6:
            address, value = _fields(pdu, 5)
            self._check(unit, state, table, address, 1, 1, read=False)
            state.set_registers(table, address, [value])
            return pdu
        # 15 and 16: address, count, byte count, data
        if len(pdu) < 6:
            raise _ModbusException(ILLEGAL_DATA_VALUE)
        address, count, byte_count = struct.unpack_from(">HHB", pdu, 1)
        data = pdu[6:]
        expected = (count + 7) // 8 if function == 15 else 2 * count
        if byte_count != expected or len(data) != byte_count:
            raise _ModbusException(ILLEGAL_DATA_VALUE)
        limit = MAX_WRITE_BITS if function == 15 else MAX_WRITE_REGISTERS
        self._check(unit, state, table, address, count, limit, read=False)
        if function == 15:
            state.set_bits(table, address, [(data[i >> 3] >> (i & 7)) & 1 for i in range(count)])
        else:
            state.set_registers(table, address, struct.unpack(f">{count}H", data))
        return pdu[:5]

    def _check(
        self,
        unit: int,
        state: ModbusDeviceState,
        table: Table,
        address: int,
        count: int,
        limit: int,
        *,
        read: bool,
    ) -> None:
        if not 1 <= count <= limit:
            raise _ModbusException(ILLEGAL_DATA_VALUE)
        if address + count > TABLE_SIZE:
            raise _ModbusException(ILLEGAL_DATA_ADDRESS)
        last = address + count - 1
        for rule in self.exceptions:
            if (
                rule.table == table
                and rule.unit in (None, unit)
                and rule.start <= last
                and address <= rule.end
            ):
                raise _ModbusException(rule.code)
        if read:
            for range_table, start, end in (*self.unreadable, *state.unreadable):
                if range_table == table and start <= last and address <= end:
                    raise _ModbusException(ILLEGAL_DATA_ADDRESS)


def _fields(pdu: bytes, size: int) -> tuple[int, int]:
    """The two uint16 after the function code of a fixed-size ``size``-byte PDU."""
    if len(pdu) != size:
        raise _ModbusException(ILLEGAL_DATA_VALUE)
    first, second = struct.unpack_from(">HH", pdu, 1)
    return first, second


def _peek(function: int, pdu: bytes) -> tuple[int, int]:
    """Address and count of a request for the log, without validating it."""
    address = int.from_bytes(pdu[1:3], "big") if len(pdu) >= 3 else 0
    if function in (5, 6):
        return address, 1 if len(pdu) >= 3 else 0
    count = int.from_bytes(pdu[3:5], "big") if len(pdu) >= 5 else 0
    return address, count


def _pack_bits(bits: list[bool]) -> bytes:
    """Pack bits eight to a byte, the first bit in the least significant position."""
    packed = bytearray((len(bits) + 7) // 8)
    for index, bit in enumerate(bits):
        if bit:
            packed[index >> 3] |= 1 << (index & 7)
    return bytes(packed)
