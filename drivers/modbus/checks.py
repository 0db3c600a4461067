"""The classic mistakes in a Modbus device entry, found before anything is polled.

- :func:`overlaps`: two points whose registers (or bits) overlap are an error, because a
  float32 at ``"30001"`` and another at ``"30002"`` cannot both be right. Two kinds of
  overlap are normal and stay valid: a ``bool`` with ``bit`` (several bits of one status
  word, or a bit of a register that is also read whole), and a point that names the other
  in ``view_of`` (a deliberate second reading of the same data, such as a float32 and its
  two raw uint16 halves). Points that are views of the same point may overlap each other.
- :func:`address_warnings`: an unquoted integer address such as ``30005`` is the protocol
  address 30005, not the 1-based notation ``"30005"`` (input register 30004); when it looks
  like notation for its own table, the user is told how to say which was meant.

Both return ``(location, message)`` pairs, the location relative to the device entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from drivers.modbus.config import BIT_TABLES, NOTATION_TABLE, TABLE_NOUNS, ModbusPoint

Location = tuple[int | str, ...]


def _bit_read(point: ModbusPoint) -> bool:
    return point.type == "bool" and point.bit is not None and point.table not in BIT_TABLES


def _deliberate(a: ModbusPoint, b: ModbusPoint) -> bool:
    if a.view_of == b.id or b.view_of == a.id:
        return True
    return a.view_of is not None and a.view_of == b.view_of


def _clash(a: ModbusPoint, b: ModbusPoint) -> bool:
    if a.table != b.table or _deliberate(a, b):
        return False
    if a.address >= b.address + b.width or b.address >= a.address + a.width:
        return False
    if _bit_read(a) and _bit_read(b):
        return a.bit == b.bit  # the same bit twice is a copy, not a status word
    return not (_bit_read(a) or _bit_read(b))


def _span(point: ModbusPoint) -> str:
    noun = TABLE_NOUNS[point.table]
    last = point.address + point.width - 1
    where = f"{point.address}" if last == point.address else f"{point.address}..{last}"
    return f"{noun}s {where}" if last != point.address else f"{noun} {where}"


def valid_points(entry: Mapping[str, Any]) -> dict[int, ModbusPoint]:
    """The points of a raw device entry that are valid on their own, by index, so that
    overlaps are found even while another point (or the device) has an error."""
    points = entry.get("points")
    found: dict[int, ModbusPoint] = {}
    for index, raw in enumerate(points if isinstance(points, list) else []):
        try:
            found[index] = ModbusPoint.model_validate(raw)
        except (ValidationError, ValueError, TypeError):
            continue
    return found


def overlaps(points: Mapping[int, ModbusPoint]) -> list[tuple[Location, str]]:
    """Every pair of points whose addresses overlap by mistake, and bad ``view_of`` names;
    ``points`` maps each point's index in the entry to the point."""
    problems: list[tuple[Location, str]] = []
    ids = {point.id for point in points.values()}
    indexed = sorted(points.items(), key=lambda item: (item[1].table, item[1].address))
    for index, point in points.items():
        if point.view_of is not None and (point.view_of not in ids or point.view_of == point.id):
            problems.append(
                (("points", index, "view_of"), f"{point.view_of!r} is not another point here")
            )
    reported: set[int] = set()
    for position, (index, point) in enumerate(indexed):
        for other_index, other in indexed[position + 1 :]:
            if other.table != point.table or other.address >= point.address + point.width:
                break
            if _clash(point, other):
                first, second = sorted(((index, point), (other_index, other)))
                if second[0] in reported:
                    continue  # one message a point is enough to find it
                reported.add(second[0])
                problems.append(
                    (
                        ("points", second[0], "address"),
                        f"point {second[1].id!r} ({_span(second[1])}) overlaps point "
                        f"{first[1].id!r} ({_span(first[1])}); if both are meant, mark one "
                        f"with view_of: {first[1].id}",
                    )
                )
    return problems


def address_warnings(raw: Mapping[str, Any]) -> list[tuple[Location, str]]:
    """Unquoted integer addresses that are probably meant as 1-based notation."""
    warnings: list[tuple[Location, str]] = []
    points = raw.get("points")
    if not isinstance(points, list):
        return warnings
    for index, point in enumerate(points):
        if not isinstance(point, Mapping):
            continue
        address = point.get("address")
        if isinstance(address, bool) or not isinstance(address, int):
            continue
        text = str(address)
        if len(text) not in (5, 6) or int(text[1:]) < 1:
            continue
        table = NOTATION_TABLE.get(text[0])
        if table is None or point.get("table", table) != table:
            continue
        noun = TABLE_NOUNS[table]
        warnings.append(
            (
                ("points", index, "address"),
                f"{address} without quotes is protocol address {address}; if you mean the "
                f'1-based notation ({noun} {int(text[1:]) - 1}), quote it: "{address}"',
            )
        )
    return warnings
