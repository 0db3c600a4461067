"""Write templates: the bytes that set a ``serial-line`` point to a value.

A point with a ``write`` template is written by sending the template formatted with the
value in the device's terms (the inverse of scale and offset, see :mod:`drivers.scaling`;
a whole number for an ``int`` point). A string value must not hold control characters or
the device's ``eol``, so that a value can never smuggle a second command onto the line.
"""

from __future__ import annotations

import unicodedata

from drivers.base import BadValue, Value, check_number
from drivers.serial_line.config import SerialLineDevice, SerialLinePoint


def write_command(device: SerialLineDevice, point_id: str, value: Value) -> bytes:
    """The bytes that write ``value`` to a point; BadValue if the point cannot take it."""
    point = next((p for p in device.points if p.id == point_id), None)
    if point is None:
        raise BadValue(f"device {device.id!r} has no point {point_id!r}")
    if point.write is None:
        raise BadValue(f"point {point_id!r} has no write command")
    raw = device_value(point, value, device.eol)
    try:
        return point.write.format(value=raw).encode(device.encoding)
    except UnicodeEncodeError:
        raise BadValue(
            f"{value!r} cannot be sent to point {point_id!r} in encoding {device.encoding!r}"
        ) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadValue(f"{value!r} does not fit the write command of {point_id!r}: {exc}") from None


def device_value(point: SerialLinePoint, value: Value, eol: str) -> Value:
    """What ``{value}`` stands for in the command: the value checked, in the device's terms."""
    if point.type == "bool":
        if not isinstance(value, bool):
            raise BadValue(f"point {point.id!r} takes true or false, not {value!r}")
        return value
    if point.type == "str":
        if not isinstance(value, str):
            raise BadValue(f"point {point.id!r} takes a string, not {value!r}")
        if eol in value or any(unicodedata.category(c) == "Cc" for c in value):
            raise BadValue(f"a value for point {point.id!r} must not hold control characters")
        return value
    value = check_number(point.id, value, point.min, point.max)
    scaling = point.scaling
    raw = scaling.invert(point.id, value)
    if point.type == "int":
        if scaling.identity and isinstance(raw, float) and not raw.is_integer():
            raise BadValue(f"point {point.id!r} takes a whole number, not {value!r}")
        return round(raw)
    try:
        return float(raw)
    except OverflowError:  # an int beyond any float
        raise BadValue(f"{value!r} is out of range for point {point.id!r}") from None
