"""One simulated Modbus unit: its four tables, every address present."""

from __future__ import annotations

from array import array
from collections.abc import Iterable

from simulators.modbus.values import (
    BIT_TABLES,
    TABLE_SIZE,
    Order,
    Table,
    Value,
    ValueType,
    decode_registers,
    encode_registers,
    register_width,
)


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
        check_span(address, count)
        return self._registers(table)[address : address + count].tolist()

    def set_registers(self, table: Table, address: int, values: Iterable[int]) -> None:
        """Store uint16 ``values`` from ``address``; ValueError past the end or out of range."""
        new = list(values)
        check_span(address, len(new))
        try:
            # slice assignment on an array would grow it past the end: check_span prevents that
            self._registers(table)[address : address + len(new)] = array("H", new)
        except OverflowError:
            raise ValueError(f"register values must be 0..65535: {new}") from None

    def get_bits(self, table: Table, address: int, count: int = 1) -> list[bool]:
        """``count`` coils or discrete inputs from ``address``."""
        check_span(address, count)
        return [bool(bit) for bit in self._bits(table)[address : address + count]]

    def set_bits(self, table: Table, address: int, values: Iterable[bool | int]) -> None:
        """Store bits from ``address`` (any truthy value is on)."""
        new = bytes(1 if value else 0 for value in values)
        check_span(address, len(new))
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


def check_span(address: int, count: int) -> None:
    """ValueError unless ``count`` addresses from ``address`` lie in 0..65535."""
    if address < 0 or count < 0 or address + count > TABLE_SIZE:
        raise ValueError(f"addresses {address}..{address + count - 1} are outside 0..65535")
