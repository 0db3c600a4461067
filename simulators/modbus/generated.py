"""Moving register values: a waveform bound to one typed value of one simulated unit."""

from __future__ import annotations

from dataclasses import dataclass

from simulators.modbus.unit import ModbusDeviceState
from simulators.modbus.values import Order, Table, Value, ValueType, wrap_integer
from simulators.waveforms import Generator


@dataclass(frozen=True, slots=True)
class GeneratedValue:
    """A generator bound to one typed value of one unit.

    Integer types take the rounded value, wrapped like a register overflowing; a bit is on
    when the rounded value is odd, so a counter blinks.
    """

    unit: int
    table: Table
    address: int
    type: ValueType
    generator: Generator
    byte_order: Order
    word_order: Order
    epoch: float

    def write(self, state: ModbusDeviceState, now: float) -> None:
        """Store the generator's value for time ``now`` in the unit's tables."""
        raw = self.generator.value(now - self.epoch)
        value: Value
        if self.type == "bool":
            value = round(raw) % 2 == 1
        elif self.type.startswith("float"):
            value = raw
        else:
            value = wrap_integer(self.type, round(raw))
        state.set_value(
            self.table, self.address, self.type, value, self.byte_order, self.word_order
        )
