"""``device-bridge probe``: read one device once and show how its registers decode.

Two forms, both through the Modbus driver's own link, planner and codec:

- :func:`probe_range`: ``count`` registers (or bits) of one table, raw, and every numeric
  type under every layout (:mod:`drivers.modbus.layouts`).
- :func:`probe_device`: one poll of a configured device, block by block as the bridge
  would send it; each point with its raw registers, its value, and its value under the
  other layouts where that differs.

Both return a JSON-ready document; :func:`render_range` and :func:`render_device` print it
for people. A failure to get an answer raises :class:`NoAnswer` with the message to show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from bridge.config import BridgeConfig
from bridge.registry import available_drivers
from drivers.base import DriverError, PointFailure, Value
from drivers.modbus.blocks import decode_block
from drivers.modbus.codec import decode_registers
from drivers.modbus.config import BIT_TABLES, NOTATION_TABLE, ModbusDevice, ModbusPoint, Table
from drivers.modbus.layouts import LAYOUT_NAMES, decodings, layout_name
from drivers.modbus.link import ModbusLink, plan_for
from drivers.modbus.planner import ReadBlock, split_block

_TABLE_DIGIT: dict[str, str] = {table: digit for digit, table in NOTATION_TABLE.items()}


class NoAnswer(Exception):
    """The device did not answer usably: no answer, an exception code, no connection."""


def notation(table: str, address: int) -> str:
    """The 1-based notation of a protocol address: ``("input", 0)`` -> ``"30001"``."""
    number = address + 1
    return (
        f"{_TABLE_DIGIT[table]}{number:04d}"
        if number <= 9999
        else f"{_TABLE_DIGIT[table]}{number:05d}"
    )


def probe_device_config(
    driver: str, connection: dict[str, Any], unit: int, timeout: float
) -> ModbusDevice:
    """A device entry for a probe or scan from the command line, validated by the driver."""
    model = available_drivers()[driver].device_model
    device = model.model_validate(
        {"id": "probe", "driver": driver, "connection": connection, "unit": unit,
         "timeout": timeout, "points": [{"id": "probe", "table": "holding", "address": 0}]}
    )  # fmt: skip
    assert isinstance(device, ModbusDevice)
    return device


async def open_link(device: ModbusDevice) -> ModbusLink[Any]:
    """The driver's own link for this device, open; NoAnswer if it cannot be opened."""
    driver = available_drivers()[device.driver]
    link = driver.open_link(driver.link_key(device), [device])
    assert isinstance(link, ModbusLink)
    try:
        await link.open()
    except DriverError as exc:
        raise NoAnswer(str(exc)) from None
    return link


async def probe_range(device: ModbusDevice, table: str, address: int, count: int) -> dict[str, Any]:
    """Read ``count`` items of ``table`` from ``address`` once; the raw data and decodings."""
    block = ReadBlock(cast(Table, table), address, count, ())
    link = await open_link(device)
    try:
        data = await link.read_raw(device, block)
    except DriverError as exc:
        raise NoAnswer(str(exc)) from None
    finally:
        await link.close()
    report: dict[str, Any] = {
        "driver": device.driver,
        "connection": getattr(device, "connection").model_dump(),  # noqa: B009 (each transport's own)
        "unit": device.unit,
        "table": table,
        "address": address,
        "count": count,
    }
    if table in BIT_TABLES:
        report["bits"] = [
            {"address": address + i, "notation": notation(table, address + i), "value": bool(b)}
            for i, b in enumerate(data)
        ]
        return report
    registers = [int(r) for r in data]
    report["registers"] = [
        {"address": address + i, "notation": notation(table, address + i), "value": r,
         "hex": f"{r:04x}"}
        for i, r in enumerate(registers)
    ]  # fmt: skip
    report["decodings"] = [
        {"type": d.type, "byte_order": d.byte_order, "word_order": d.word_order,
         "layout": d.layout, "values": list(d.values)}
        for d in decodings(registers)
    ]  # fmt: skip
    return report


def _other_layouts(point: ModbusPoint, registers: Sequence[int], value: Value) -> dict[str, Value]:
    """The point's value under each other layout, where it differs from ``value``."""
    if point.type in ("bool", "string"):
        return {}
    others: dict[str, Value] = {}
    for byte_order, word_order in LAYOUT_NAMES:
        if point.width == 1 and word_order == "little":
            continue
        if (byte_order, word_order) == (point.byte_order, point.word_order):
            continue
        if point.width == 1 and byte_order == point.byte_order:
            continue
        variant = point.model_copy(update={"byte_order": byte_order, "word_order": word_order})
        other = decode_registers(variant, registers)
        if not isinstance(other, PointFailure) and other != value:
            others[layout_name(byte_order, word_order, point.width)] = other
    return others


async def _read_blocks(
    link: ModbusLink[Any], device: ModbusDevice, block: ReadBlock
) -> list[tuple[ReadBlock, Sequence[int] | Sequence[bool] | str]]:
    """Read a block; a refused block of several points is split, as the driver does."""
    try:
        return [(block, await link.read_raw(device, block))]
    except DriverError as exc:
        if len(block.points) < 2 or getattr(exc, "code", None) != 2:
            return [(block, str(exc))]
    left, right = split_block(block)
    return await _read_blocks(link, device, left) + await _read_blocks(link, device, right)


async def probe_device(config: BridgeConfig, device_id: str) -> dict[str, Any]:
    """One poll of a configured Modbus device, block by block; NoAnswer if nothing answered."""
    device = config.device(device_id)
    if device is None:
        known = ", ".join(d.id for d in config.devices)
        raise NoAnswer(f"no device {device_id!r} in the file (devices: {known})")
    if not isinstance(device, ModbusDevice):
        raise NoAnswer(f"probe reads Modbus devices; {device_id!r} is {device.driver}")
    link = await open_link(device)
    results: list[tuple[ReadBlock, Sequence[int] | Sequence[bool] | str]] = []
    try:
        for block in plan_for(device).blocks:
            results += await _read_blocks(link, device, block)
    finally:
        await link.close()
    points: list[dict[str, Any]] = []
    for block, data in results:
        if isinstance(data, str):
            points += [{"id": p.id, "table": p.table, "address": p.address, "error": data}
                       for p in block.points]  # fmt: skip
            continue
        for point, value in decode_block(block, data):
            at = point.address - block.start
            entry: dict[str, Any] = {
                "id": point.id, "table": point.table, "address": point.address,
                "notation": notation(point.table, point.address), "type": point.type,
            }  # fmt: skip
            if block.is_bits:
                entry["raw"] = [bool(data[at])]
            else:
                raw = [int(r) for r in data[at : at + point.width]]
                entry["raw"] = [f"{r:04x}" for r in raw]
                if point.type not in ("bool", "string"):
                    entry["layout"] = layout_name(point.byte_order, point.word_order, point.width)
            if isinstance(value, PointFailure):
                entry["error"] = value.error
            else:
                entry["value"] = value
                if not block.is_bits:
                    entry["other_layouts"] = _other_layouts(point, raw, value)
            points.append(entry)
    if all("error" in p for p in points):
        raise NoAnswer(f"device {device_id!r}: {points[0]['error']}")
    points.sort(key=lambda p: [q.id for q in device.points].index(p["id"]))
    return {"device": device_id, "driver": device.driver, "unit": device.unit, "points": points}


def _cell(value: Value | None) -> str:
    return "-" if value is None else str(value)


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]  # fmt: skip


def render_range(report: dict[str, Any]) -> list[str]:
    """The lines ``probe`` prints for a range: raw data, then one row per type and layout."""
    table, address, count = report["table"], report["address"], report["count"]
    lines = [f"unit {report['unit']}, {table} {address}..{address + count - 1} "
             f"({notation(table, address)}..{notation(table, address + count - 1)}):"]  # fmt: skip
    if "bits" in report:
        return lines + _columns([[b["notation"], str(b["address"]), str(int(b["value"]))]
                                 for b in report["bits"]])  # fmt: skip
    rows = [["notation", "address", "hex", "uint16"]]
    rows += [[r["notation"], str(r["address"]), r["hex"], str(r["value"])]
             for r in report["registers"]]  # fmt: skip
    lines += _columns(rows)
    lines.append("decoded from the first register (byte order / word order):")
    grid = [["type", "layout", "byte", "word", "values"]]
    for d in report["decodings"]:
        grid.append([d["type"], d["layout"], d["byte_order"], d["word_order"],
                     "  ".join(_cell(v) for v in d["values"])])  # fmt: skip
    return lines + _columns(grid)


def render_device(report: dict[str, Any]) -> list[str]:
    """The lines ``probe -c FILE DEVICE`` prints: one row per point."""
    lines = [f"device {report['device']} (unit {report['unit']}), one poll:"]
    rows = [["point", "address", "type", "raw", "value", "other layouts"]]
    for p in report["points"]:
        where = f"{p['table']} {p['address']}"
        if "error" in p:
            rows.append([p["id"], where, p.get("type", ""), "", f"ERROR: {p['error']}", ""])
            continue
        raw = " ".join(str(int(r)) if isinstance(r, bool) else r for r in p["raw"])
        value = f"{p['value']} ({p['layout']})" if "layout" in p else str(p["value"])
        others = ", ".join(f"{k} {v}" for k, v in p.get("other_layouts", {}).items())
        rows.append([p["id"], where, p["type"], raw, value, others])
    return lines + _columns(rows)
