"""Turning a line of text into a record, and a record's fields into point values.

Pure functions; the driver feeds them decoded lines without their terminator.

Records. ``regex``: the named groups of the first match anywhere in the line (``search``;
anchor with ``^`` and ``$``), a group that took no part being None. ``json``: a JSON
object; nested objects and arrays are flattened into dotted names (``{"a": {"b": [1]}}``
gives ``a.b.0``). ``csv``: exactly as many cells as columns (quotes as in RFC 4180,
blanks around cells dropped). Anything else is not a record: None. Carriage returns and
line feeds at either end of the line never count, so a device ending lines with ``\\r\\n``
read with ``eol: "\\n"`` still parses.

Values. ``float`` and ``int`` take numbers, or text that spells one (``int`` refuses
``1.5``); ``bool`` takes true/false, 1/0, on/off, yes/no in any case (and JSON booleans
and 0/1); ``str`` takes text as it is (a JSON number or boolean as JSON writes it). Then
``value = raw * scale + offset`` for numbers, rounded as :mod:`drivers.scaling` says (the
raw value's places are those of the text as the device wrote it): ``"1234" * 0.01`` reads
``12.34``, never ``12.340000000000002``. With ``scale: 1`` and ``offset: 0`` an ``int``
stays an int. NaN and infinities are :data:`~drivers.scaling.NOT_FINITE`, and anything
that does not convert a :class:`~drivers.base.PointFailure` naming the field and the text.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from drivers.base import PointFailure, Value
from drivers.scaling import NOT_FINITE, decimal_places
from drivers.serial_line.config import LineParse, SerialLinePoint

Field = str | float | int | bool | None
Record = dict[str, Field]

#: integers must fit in 64 bits, signed or not: no consumer of a reading holds more
_INT_MIN, _INT_END = -(2**63), 2**64

_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})


def parse_line(parse: LineParse, text: str) -> Record | None:
    """The record a line holds, or None if the line is not one."""
    text = text.strip("\r\n")
    if parse.regex is not None:
        match = parse.regex.search(text)
        return None if match is None else match.groupdict()
    if parse.csv is not None:
        return _csv_record(parse.csv, parse.delimiter, text)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    record: Record = {}
    _flatten(data, "", record)
    return record


def _csv_record(columns: Sequence[str], delimiter: str, text: str) -> Record | None:
    try:
        rows = list(csv.reader([text], delimiter=delimiter, skipinitialspace=True, strict=True))
    except csv.Error:
        return None
    if len(rows) != 1 or len(rows[0]) != len(columns):
        return None
    return {column: cell.strip() for column, cell in zip(columns, rows[0], strict=True)}


def _flatten(value: Any, name: str, into: Record) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{name}.{key}" if name else str(key), into)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{name}.{index}" if name else str(index), into)
    else:
        into[name] = value


def record_values(
    points: Sequence[SerialLinePoint], record: Mapping[str, Field]
) -> dict[str, Value | PointFailure]:
    """Every point's value (or failure) from one record."""
    values: dict[str, Value | PointFailure] = {}
    for point in points:
        if point.source in record:
            values[point.id] = point_value(point, record[point.source])
        else:
            values[point.id] = PointFailure(f"field {point.source!r} is not in the record")
    return values


def point_value(point: SerialLinePoint, raw: Field) -> Value | PointFailure:
    """Convert one field of a record to the point's type, then apply scale and offset."""
    name = point.source
    if raw is None:
        return PointFailure(f"field {name!r} is empty")
    if point.type == "str":
        return raw if isinstance(raw, str) else json.dumps(raw)
    if point.type == "bool":
        return _boolean(name, raw)
    converted: tuple[float, str] | PointFailure = (
        _integer(name, raw) if point.type == "int" else _float(name, raw)
    )
    if isinstance(converted, PointFailure):
        return converted
    number, text = converted
    scaling = point.scaling
    if scaling.identity:
        return number
    return scaling.apply(number, decimal_places(text))


def _boolean(name: str, raw: str | float | int | bool) -> bool | PointFailure:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float):
        if raw in (0, 1):
            return raw == 1
        return PointFailure(f"field {name!r}: {_short(raw)} is not a boolean (0 or 1)")
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return PointFailure(
        f"field {name!r}: {_short(raw)} is not a boolean (true/false, 1/0, on/off, yes/no)"
    )


def _float(name: str, raw: str | float | int | bool) -> tuple[float, str] | PointFailure:
    """The number and the text its decimal places are counted from."""
    if isinstance(raw, bool):
        return PointFailure(f"field {name!r}: {json.dumps(raw)} is not a number")
    if isinstance(raw, int | float):
        try:
            number, text = float(raw), repr(raw)
        except OverflowError:  # a JSON integer beyond any float (10**400)
            return PointFailure(f"field {name!r}: {_short(raw)} is beyond the float range")
    else:
        text = raw.strip()
        try:
            number = float(text)
        except ValueError:
            return PointFailure(f"field {name!r}: {_short(raw)} is not a number")
    if not math.isfinite(number):
        return NOT_FINITE
    return number, text


def _integer(name: str, raw: str | float | int | bool) -> tuple[int, str] | PointFailure:
    number = _whole(name, raw)
    if isinstance(number, int) and not _INT_MIN <= number < _INT_END:
        return PointFailure(f"field {name!r}: {_short(raw)} is beyond the 64-bit integer range")
    return number if isinstance(number, PointFailure) else (number, "0")


def _whole(name: str, raw: str | float | int | bool) -> int | PointFailure:
    if isinstance(raw, bool):
        return PointFailure(f"field {name!r}: {json.dumps(raw)} is not an integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if not math.isfinite(raw):
            return NOT_FINITE
        if not raw.is_integer():
            return PointFailure(f"field {name!r}: {_short(raw)} is not an integer")
        return int(raw)
    try:
        number = Decimal(raw.strip())
    except InvalidOperation:
        return PointFailure(f"field {name!r}: {_short(raw)} is not an integer")
    if not number.is_finite():
        return NOT_FINITE
    if number != number.to_integral_value():
        return PointFailure(f"field {name!r}: {_short(raw)} is not an integer")
    if not _INT_MIN <= number < _INT_END:
        return PointFailure(f"field {name!r}: {_short(raw)} is beyond the 64-bit integer range")
    return int(number)


def _short(raw: object, most: int = 40) -> str:
    """``repr(raw)``, cut to ``most`` characters: a device's line may be long."""
    if isinstance(raw, int) and abs(raw) >= 10**most:
        # not repr(): beyond 4300 digits it raises, and it takes quadratic time
        return f"an integer of {int(raw.bit_length() * 0.30103) + 1} digits"
    text = repr(raw)
    return text if len(text) <= most else text[: most - 1] + "…"
