"""Validated Modbus device and point entries of the device file, for both transports.

After validation a point's ``table`` is always set and its ``address`` is always the 0-based
protocol address, whichever notation the file used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.base import DeviceConfig
from drivers.scaling import NumericPoint
from drivers.serial_port import SerialConnection

Table = Literal["holding", "input", "coil", "discrete"]
PointType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool", "string"
]
Order = Literal["big", "little"]

REGISTER_TABLES: frozenset[str] = frozenset({"holding", "input"})
BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete"})

#: registers a value of each fixed-size type occupies
REGISTER_WIDTH: dict[str, int] = {
    "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4,
    "float32": 2, "float64": 4, "bool": 1,
}  # fmt: skip

#: first digit of the 1-based register notation ("40001") and the table it names
NOTATION_TABLE: dict[str, Table] = {"0": "coil", "1": "discrete", "3": "input", "4": "holding"}


#: what one item of each table is called in messages
TABLE_NOUNS: dict[str, str] = {
    "holding": "holding register", "input": "input register",
    "coil": "coil", "discrete": "discrete input",
}  # fmt: skip


def with_article(noun: str) -> str:
    """``"input register"`` -> ``"an input register"``."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def parse_register_notation(text: str) -> tuple[Table, int]:
    """Turn ``"40001"`` (or six-digit ``"400001"``) into ``("holding", 0)``.

    Raises ValueError with a message for the user when the text is not such a number.
    """
    if not text.isdigit() or len(text) not in (5, 6):
        raise ValueError(
            f"register notation {text!r} must be 5 or 6 digits like '40001' (holding register 0)"
        )
    table = NOTATION_TABLE.get(text[0])
    if table is None:
        raise ValueError(
            f"register notation {text!r} must start with 0 (coil), 1 (discrete), "
            "3 (input) or 4 (holding)"
        )
    number = int(text[1:])
    if number < 1:
        raise ValueError(f"register notation {text!r} counts from 1: the first is {text[0]}0001")
    return table, number - 1


class ModbusPoint(NumericPoint):
    """One value read from a Modbus table."""

    table: Table
    address: int = Field(ge=0, le=65535)
    type: PointType = "uint16"
    byte_order: Order = "big"
    word_order: Order = "big"
    bit: int | None = Field(default=None, ge=0, le=15)
    length: int | None = Field(default=None, ge=1, le=123)
    view_of: str | None = None
    """The id of another point of the device that this one reads the same data as, on
    purpose: their addresses may overlap (see :mod:`drivers.modbus.checks`)."""

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        address = data.get("address")
        if isinstance(address, str):
            table, number = parse_register_notation(address)
            given = data.get("table")
            if given is not None and given != table:
                raise ValueError(
                    f"address {address!r} is in table {table!r}, but table is {given!r}"
                )
            data["table"], data["address"] = table, number
        elif isinstance(address, bool):
            raise ValueError("address must be an integer or register notation like '40001'")
        if data.get("table") in BIT_TABLES and "type" not in data:
            data["type"] = "bool"
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ModbusPoint:
        if self.table in BIT_TABLES:
            if self.type != "bool":
                raise ValueError(
                    f"{with_article(TABLE_NOUNS[self.table])} holds one bit: type must be bool, "
                    f"not {self.type}"
                )
            if self.bit is not None:
                raise ValueError(f"bit applies to registers, not to {TABLE_NOUNS[self.table]}s")
        if self.bit is not None and self.type != "bool":
            raise ValueError("bit takes one bit of a register: type must be bool")
        if self.type == "string":
            if self.length is None:
                raise ValueError("a string needs length (registers, two characters each)")
        elif self.length is not None:
            raise ValueError("length applies to strings only")
        if self.writable and self.table in ("input", "discrete"):
            raise ValueError(
                f"{with_article(TABLE_NOUNS[self.table])} is read-only: it cannot be writable"
            )
        if self.address + self.width > 65536:
            raise ValueError(f"the value runs past the last address 65535 ({self.width} wide)")
        return self

    @property
    def width(self) -> int:
        """Registers (or bits, for coils and discrete inputs) the value occupies."""
        if self.table in BIT_TABLES:
            return 1
        if self.type == "string":
            assert self.length is not None
            return self.length
        return REGISTER_WIDTH[self.type]


class TcpConnection(BaseModel):
    """Where a Modbus TCP device (or gateway) listens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)


class ModbusDevice(DeviceConfig):
    """Fields every Modbus device has, over any transport."""

    unit: int = Field(default=1, ge=0, le=255)
    max_gap: int = Field(default=10, ge=0, le=124)
    max_registers: int = Field(default=125, ge=1, le=125)
    max_bits: int = Field(default=2000, ge=1, le=2000)
    points: Sequence[ModbusPoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _points_fit_a_request(self) -> ModbusDevice:
        for point in self.points:
            if point.table in REGISTER_TABLES and point.width > self.max_registers:
                raise ValueError(
                    f"point {point.id!r} is {point.width} registers wide, more than "
                    f"max_registers ({self.max_registers}) allows in one request"
                )
        return self


class ModbusTcpDevice(ModbusDevice):
    """A ``modbus-tcp`` device entry."""

    driver: Literal["modbus-tcp"]
    connection: TcpConnection


class RtuConnection(SerialConnection):
    """A serial port carrying Modbus RTU."""

    extra_gap: float = Field(default=0.0, ge=0, le=1.0, allow_inf_nan=False)


class ModbusRtuDevice(ModbusDevice):
    """A ``modbus-rtu`` device entry."""

    driver: Literal["modbus-rtu"]
    connection: RtuConnection
