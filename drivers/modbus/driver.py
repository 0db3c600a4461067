"""What the Modbus drivers share, whatever the transport: write checks and the poll plan.

:class:`ModbusDriver` is the base of ``modbus-tcp`` (:mod:`drivers.modbus.tcp`) and
``modbus-rtu`` (:mod:`drivers.modbus.rtu`); each transport adds its link key, its link
checks and its link (:class:`~drivers.modbus.link.ModbusLink` with the transactions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.base import BadValue, Driver, EntryPlace, Value
from drivers.modbus.checks import address_warnings, overlaps, valid_points
from drivers.modbus.codec import encode_value
from drivers.modbus.link import ModbusDeviceT, plan_for, point_of
from drivers.modbus.planner import describe_block


class ModbusDriver(Driver[ModbusDeviceT]):
    """A Modbus driver family over one transport."""

    def check_write(self, device: ModbusDeviceT, point_id: str, value: Value) -> None:
        """Raise BadValue unless the point can take the value (type, range, min/max)."""
        point = point_of(device, point_id)
        if point is None:
            raise BadValue(f"device {device.id!r} has no point {point_id!r}")
        encode_value(point, value)

    def describe(self, device: ModbusDeviceT) -> list[str]:
        return [describe_block(block) for block in plan_for(device).blocks]

    def entry_problems(self, entry: Mapping[str, Any]) -> list[tuple[EntryPlace, str]]:
        return overlaps(valid_points(entry))

    def entry_warnings(self, entry: Mapping[str, Any]) -> list[tuple[EntryPlace, str]]:
        return address_warnings(entry)
