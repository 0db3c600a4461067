"""Transport-independent Modbus device simulation: tables, typed values, faults, PDUs.

A :class:`ModbusSimulator` answers request PDUs (function code + data, no framing) for
several units. The TCP server (:mod:`simulators.modbus_tcp`) and, later, an RTU server
over a pty wrap it with their own framing; everything here is shared by both.

Typed values are encoded with :mod:`struct` on purpose, independently of ``drivers/``:
if the driver decodes a value wrongly, a test against this simulator must fail rather
than the same bug cancelling itself out on both sides.
"""

from __future__ import annotations

import math
import random
import struct
import time
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, get_args

Table = Literal["holding", "input", "coil", "discrete"]
ValueType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool", "string"
]  # fmt: skip
Order = Literal["big", "little"]
Value = int | float | str | bool

TABLES: Final[tuple[Table, ...]] = get_args(Table)
VALUE_TYPES: Final[tuple[ValueType, ...]] = get_args(ValueType)
REGISTER_TABLES: Final = frozenset({"holding", "input"})
BIT_TABLES: Final = frozenset({"coil", "discrete"})
TABLE_SIZE: Final = 65536

#: struct format (big-endian, whole value) of every numeric type
_STRUCT: Final[dict[str, str]] = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I",
    "int64": ">q", "uint64": ">Q", "float32": ">f", "float64": ">d",
}  # fmt: skip

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


# --------------------------------------------------------------------------- typed values


def register_width(type: ValueType, length: int | None = None) -> int:
    """Registers a value of ``type`` occupies (``length`` for strings, 1 for bool)."""
    if type == "string":
        if length is None:
            raise ValueError("a string needs length (registers, two characters each)")
        return length
    if type == "bool":
        return 1
    return struct.calcsize(_STRUCT[type]) // 2


def encode_registers(
    type: ValueType,
    value: Value,
    *,
    byte_order: Order = "big",
    word_order: Order = "big",
    length: int | None = None,
) -> list[int]:
    """Encode ``value`` as the registers a device with that layout would hold.

    Words are most significant first unless ``word_order`` is ``"little"``; bytes inside
    each register are swapped when ``byte_order`` is ``"little"``. Strings are ASCII,
    NUL-padded to ``length`` registers (default: just long enough); they honour
    ``byte_order`` but not ``word_order``, as devices store text in reading order.
    Raises ValueError when the value does not fit the type.
    """
    if type == "bool":
        raise ValueError("bool is a coil or discrete input: use set_bits, not registers")
    if type == "string":
        if not isinstance(value, str):
            raise ValueError(f"a string value must be text, not {value!r}")
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"{value!r} is not ASCII") from None
        if length is None:
            length = max(1, (len(raw) + 1) // 2)
        if len(raw) > 2 * length:
            raise ValueError(f"{value!r} is longer than {length} registers ({2 * length} bytes)")
        raw = raw.ljust(2 * length, b"\0")
        words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    else:
        raw = _pack_number(type, value)
        words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
        if word_order == "little":
            words.reverse()
    if byte_order == "little":
        words = [word[::-1] for word in words]
    return [int.from_bytes(word, "big") for word in words]


def decode_registers(
    type: ValueType,
    registers: Iterable[int],
    *,
    byte_order: Order = "big",
    word_order: Order = "big",
) -> int | float | str:
    """Inverse of :func:`encode_registers`; strings lose their trailing NULs."""
    words = [register.to_bytes(2, "big") for register in registers]
    if byte_order == "little":
        words = [word[::-1] for word in words]
    if type == "string":
        return b"".join(words).rstrip(b"\0").decode("ascii", errors="replace")
    if type == "bool":
        raise ValueError("bool is a coil or discrete input: use get_bits, not registers")
    if word_order == "little":
        words.reverse()
    value: int | float = struct.unpack(_STRUCT[type], b"".join(words))[0]
    return value


def _pack_number(type: ValueType, value: Value) -> bytes:
    fmt = _STRUCT[type]
    if isinstance(value, str):
        raise ValueError(f"a {type} value must be a number, not {value!r}")
    if type.startswith("float"):
        return struct.pack(fmt, float(value))
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"a {type} value must be a whole number, not {value!r}")
        value = int(value)
    try:
        return struct.pack(fmt, int(value))
    except struct.error:
        raise ValueError(f"{value!r} is out of range for {type}") from None


def wrap_integer(type: ValueType, value: int) -> int:
    """Bring ``value`` into the range of integer ``type`` the way a register overflows."""
    bits = 16 * register_width(type)
    value %= 1 << bits
    if type.startswith("int") and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


# --------------------------------------------------------------------------- one unit


class ModbusDeviceState:
    """The four tables of one Modbus unit, every address 0..65535 present and 0 at start.

    ``unreadable`` holds ``(table, start, end_inclusive)`` ranges of this unit that answer
    "illegal data address" to any read touching them, like gaps in a real register map.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.holding = array("H", bytes(2 * TABLE_SIZE))
        self.input = array("H", bytes(2 * TABLE_SIZE))
        self.coils = bytearray(TABLE_SIZE)
        self.discrete = bytearray(TABLE_SIZE)
        self.unreadable: list[tuple[Table, int, int]] = []

    def _registers(self, table: Table) -> array[int]:
        if table == "holding":
            return self.holding
        if table == "input":
            return self.input
        raise ValueError(f"{table!r} is not a register table (holding, input)")

    def _bits(self, table: Table) -> bytearray:
        if table == "coil":
            return self.coils
        if table == "discrete":
            return self.discrete
        raise ValueError(f"{table!r} is not a bit table (coil, discrete)")

    def get_registers(self, table: Table, address: int, count: int = 1) -> list[int]:
        """``count`` registers from ``address``; ValueError past the end of the table."""
        _check_span(address, count)
        return self._registers(table)[address : address + count].tolist()

    def set_registers(self, table: Table, address: int, values: Iterable[int]) -> None:
        """Store uint16 ``values`` from ``address``; ValueError past the end or out of range."""
        new = list(values)
        _check_span(address, len(new))
        try:
            # slice assignment on an array would grow it past the end: _check_span prevents that
            self._registers(table)[address : address + len(new)] = array("H", new)
        except OverflowError:
            raise ValueError(f"register values must be 0..65535: {new}") from None

    def get_bits(self, table: Table, address: int, count: int = 1) -> list[bool]:
        """``count`` coils or discrete inputs from ``address``."""
        _check_span(address, count)
        return [bool(bit) for bit in self._bits(table)[address : address + count]]

    def set_bits(self, table: Table, address: int, values: Iterable[bool | int]) -> None:
        """Store bits from ``address`` (any truthy value is on)."""
        new = bytes(1 if value else 0 for value in values)
        _check_span(address, len(new))
        self._bits(table)[address : address + len(new)] = new

    def set_value(
        self,
        table: Table,
        address: int,
        type: ValueType,
        value: Value,
        byte_order: Order = "big",
        word_order: Order = "big",
        *,
        length: int | None = None,
    ) -> None:
        """Store a typed value; see :func:`encode_registers` for the layout.

        On a coil or discrete input ``type`` must be ``bool``. Raises ValueError when the
        value does not fit its type or runs past the end of the table.
        """
        if table in BIT_TABLES:
            if type != "bool":
                raise ValueError(f"a {table} holds one bit: type must be bool, not {type}")
            self.set_bits(table, address, [bool(value)])
            return
        registers = encode_registers(
            type, value, byte_order=byte_order, word_order=word_order, length=length
        )
        self.set_registers(table, address, registers)

    def get_value(
        self,
        table: Table,
        address: int,
        type: ValueType,
        byte_order: Order = "big",
        word_order: Order = "big",
        *,
        length: int | None = None,
    ) -> Value:
        """Read back a typed value stored by :meth:`set_value` or by a client's write."""
        if table in BIT_TABLES:
            return self.get_bits(table, address)[0]
        registers = self.get_registers(table, address, register_width(type, length))
        return decode_registers(type, registers, byte_order=byte_order, word_order=word_order)


def _check_span(address: int, count: int) -> None:
    if address < 0 or count < 0 or address + count > TABLE_SIZE:
        raise ValueError(f"addresses {address}..{address + count - 1} are outside 0..65535")


# --------------------------------------------------------------------------- moving values


class Generator(Protocol):
    """A value that moves with time: ``value(elapsed)`` for seconds since it was attached."""

    def value(self, elapsed: float) -> float: ...


@dataclass(slots=True)
class Sine:
    """``offset + amplitude * sin(2π * elapsed / period)``."""

    amplitude: float
    period: float
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not self.period > 0:
            raise ValueError(f"period must be positive, not {self.period}")

    def value(self, elapsed: float) -> float:
        return self.offset + self.amplitude * math.sin(2 * math.pi * elapsed / self.period)


@dataclass(slots=True)
class Ramp:
    """``start + step * elapsed``, back to ``start`` on reaching ``wrap`` (if set)."""

    start: float = 0.0
    step: float = 1.0
    wrap: float | None = None

    def __post_init__(self) -> None:
        if self.wrap is not None and (self.wrap - self.start) * self.step <= 0:
            raise ValueError(
                f"wrap ({self.wrap}) must lie beyond start ({self.start}) "
                f"in the direction of step ({self.step})"
            )

    def value(self, elapsed: float) -> float:
        if self.wrap is None:
            return self.start + self.step * elapsed
        return self.start + math.fmod(self.step * elapsed, self.wrap - self.start)


@dataclass(slots=True)
class Counter:
    """``start + floor(increment * elapsed)``: a whole-number count, such as run seconds."""

    start: int = 0
    increment: float = 1.0

    def value(self, elapsed: float) -> float:
        return self.start + math.floor(self.increment * elapsed)


@dataclass(slots=True)
class RandomWalk:
    """Moves by a uniform step in ``[-step, step]`` every ``interval`` seconds, kept in
    ``[min, max]``. Steps depend on elapsed time, not on how often it is read; ``seed``
    makes the walk repeatable."""

    start: float
    min: float
    max: float
    step: float = 1.0
    interval: float = 1.0
    seed: int | None = None
    _current: float = field(init=False)
    _steps: int = field(init=False, default=0)
    _rng: random.Random = field(init=False)

    #: a clock jump beyond this many steps skips ahead instead of looping for ever
    MAX_CATCH_UP = 10_000

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if not self.interval > 0:
            raise ValueError(f"interval must be positive, not {self.interval}")
        self._current = max(self.min, min(self.max, self.start))
        self._rng = random.Random(self.seed)

    def value(self, elapsed: float) -> float:
        target = max(0, math.floor(elapsed / self.interval))
        self._steps = max(self._steps, target - self.MAX_CATCH_UP)
        while self._steps < target:
            moved = self._current + self._rng.uniform(-self.step, self.step)
            self._current = max(self.min, min(self.max, moved))
            self._steps += 1
        return self._current


@dataclass(frozen=True, slots=True)
class GeneratedValue:
    """A generator bound to one typed value of one unit."""

    unit: int
    table: Table
    address: int
    type: ValueType
    generator: Generator
    byte_order: Order
    word_order: Order
    epoch: float


# --------------------------------------------------------------------------- the simulator


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
        self.unreadable: list[tuple[Table, int, int]] = []
        self.exceptions: list[ExceptionRule] = []
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

    def clear_faults(self) -> None:
        """Switch every fault off (the units' own ``unreadable`` ranges stay)."""
        self.delay = 0.0
        self.silent = False
        self.garbage = None
        self.unreadable.clear()
        self.exceptions.clear()

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
        _check_span(address, register_width(type))
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
        if state is None:
            return
        raw = binding.generator.value(now - binding.epoch)
        value: Value
        if binding.type == "bool":
            value = round(raw) % 2 == 1
        elif binding.type.startswith("float"):
            value = raw
        else:
            value = wrap_integer(binding.type, round(raw))
        state.set_value(
            binding.table, binding.address, binding.type, value,
            binding.byte_order, binding.word_order,
        )  # fmt: skip

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
        try:
            return self._dispatch(unit, state, function, pdu)
        except _ModbusException as error:
            return bytes([function | 0x80, error.code])

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
