"""``device-bridge scan``: which unit ids answer on a bus or endpoint, and what they hold.

Through the Modbus driver's own link, one request at a time:

1. :func:`find_units` asks each unit id for holding register 0 with a short timeout. Any
   answer, an exception included, means a device is there; exceptions 10 and 11 are a
   gateway saying nobody is behind it, and silence means nobody either, as does, on a
   bus, only another unit's reply (a slow unit's, come after its own request timed out).
2. :func:`readable_ranges` reads each table of a unit found over a window of addresses in
   requests as large as the device allows, and splits a request refused with "illegal data
   address" in two, as the driver's planner does, down to single addresses: what is left
   are the readable blocks. "Illegal function" means the unit has no such table. A read
   that gets no usable answer is asked once more; blocks that got none twice are named
   in the table's note, apart from the readable ones.

It is a set-up-time command: it talks to every unit id, which a bridge polling the same
bus would see as noise (and an RS-485 bus has one master). :func:`port_holders` finds the
processes that have a serial port open, so that the command can refuse to scan a port in
use; for TCP it can only say so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drivers.base import DeviceError, DeviceTimeout
from drivers.modbus.config import BIT_TABLES, ModbusDevice, Table
from drivers.modbus.link import ILLEGAL_ADDRESS, ModbusLink
from drivers.modbus.pdu import EXCEPTION_NAMES, ForeignReply, ModbusRefusal
from drivers.modbus.planner import ReadBlock

ILLEGAL_FUNCTION = 1
#: a read of a unit that has answered is asked again when it gets no usable answer (none,
#: or a garbled one): on a noisy line, one lost reply should not make a block unreadable
READ_ATTEMPTS = 2
#: exceptions a gateway answers for a unit behind it that is absent or silent
GATEWAY_ABSENT = frozenset({10, 11})
TABLES: tuple[Table, ...] = ("holding", "input", "coil", "discrete")

Progress = Callable[[int, bool], None]
"""Called after each unit id is asked: the unit, and whether it answered."""


@dataclass
class UnitReport:
    """One unit that answered, and the readable blocks of each of its tables."""

    unit: int
    answer: str
    ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """Table -> readable blocks ``(first, last)``, inclusive, in address order."""
    notes: dict[str, str] = field(default_factory=dict)
    """Table -> why nothing of it was read (no such table, no answer)."""

    def as_json(self) -> dict[str, Any]:
        """The unit as a JSON-ready mapping."""
        return {
            "unit": self.unit,
            "answer": self.answer,
            "tables": {
                table: {
                    "ranges": [{"start": a, "end": b} for a, b in self.ranges.get(table, [])],
                    **({"note": self.notes[table]} if table in self.notes else {}),
                }
                for table in TABLES
            },
        }


def parse_span(text: str, low: int, high: int, what: str) -> list[int]:
    """``"1-32"``, ``"5"`` or ``"1,3,10-12"`` -> the numbers, each within ``low..high``."""
    numbers: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            start, end = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"{what} {text!r}: give numbers like 1-247 or 1,3,10-12") from None
        if not low <= start <= end <= high:
            raise ValueError(f"{what} {text!r}: each must be within {low}..{high}, low to high")
        numbers.extend(range(start, end + 1))
    return sorted(set(numbers))


def with_unit(device: ModbusDevice, unit: int) -> ModbusDevice:
    """The same device entry for another unit id (the link's transactions use only that)."""
    return device.model_copy(update={"unit": unit})


async def ask_unit(link: ModbusLink[Any], device: ModbusDevice) -> str | None:
    """How the unit answered a read of holding register 0, or None if it is not there."""
    try:
        await link.read_raw(device, ReadBlock("holding", 0, 1, ()))
    except ModbusRefusal as refusal:
        if refusal.code in GATEWAY_ABSENT:
            return None
        return f"answered exception {refusal.code} ({EXCEPTION_NAMES.get(refusal.code, '?')})"
    except (DeviceTimeout, ForeignReply):  # another unit's reply is no sign of this one
        return None
    except DeviceError as exc:
        return f"answered, but not usably ({exc})"
    return "answered"


async def find_units(
    link: ModbusLink[Any], template: ModbusDevice, units: Iterable[int], progress: Progress
) -> list[UnitReport]:
    """Every unit id in ``units`` that answers; LinkError if the link itself fails."""
    found = []
    for unit in units:
        answer = await ask_unit(link, with_unit(template, unit))
        progress(unit, answer is not None)
        if answer is not None:
            found.append(UnitReport(unit, answer))
    return found


def _merge(blocks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(blocks):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


async def readable_ranges(
    link: ModbusLink[Any], device: ModbusDevice, table: Table, first: int, last: int
) -> tuple[list[tuple[int, int]], str | None]:
    """The readable blocks of one table within ``first..last``, and a note if some could
    not be read for a reason other than illegal addresses: no such table, or no usable
    answer to a read asked :data:`READ_ATTEMPTS` times (which names the blocks, when
    others were readable)."""
    size = device.max_bits if table in BIT_TABLES else device.max_registers
    readable: list[tuple[int, int]] = []
    unanswered: list[tuple[int, int]] = []
    refused: str | None = None
    failure: str | None = None  # why the first block that failed every attempt did

    async def read(start: int, end: int) -> None:  # end exclusive
        nonlocal refused, failure
        error = ""
        for _ in range(READ_ATTEMPTS):
            try:
                await link.read_raw(device, ReadBlock(table, start, end - start, ()))
            except ModbusRefusal as refusal:
                if refusal.code == ILLEGAL_ADDRESS:
                    if end - start > 1:
                        middle = (start + end) // 2
                        await read(start, middle)
                        await read(middle, end)
                    return
                refused = str(refusal)
                return
            except (DeviceTimeout, DeviceError) as exc:
                error = str(exc)
                continue
            readable.append((start, end - 1))
            return
        unanswered.append((start, end - 1))
        failure = failure or error

    for start in range(first, last + 1, size):
        await read(start, min(start + size, last + 1))
        if (refused is not None or unanswered) and not readable:
            break  # no such table, or silence: asking further costs two timeouts each
    if unanswered and readable:
        blocks = ", ".join(f"{a}..{b}" for a, b in _merge(unanswered))
        return _merge(readable), f"{failure} at {blocks}, asked {READ_ATTEMPTS} times"
    if unanswered:
        return [], f"{failure}, asked {READ_ATTEMPTS} times"
    return _merge(readable), (refused if not readable else None)


async def survey(
    link: ModbusLink[Any], template: ModbusDevice, report: UnitReport, first: int, last: int
) -> None:
    """Fill in the readable blocks of every table of one unit found."""
    device = with_unit(template, report.unit)
    for table in TABLES:
        ranges, note = await readable_ranges(link, device, table, first, last)
        report.ranges[table] = ranges
        if note is not None:
            report.notes[table] = note


def answer_hints(counts: Mapping[str, int], timeout: float) -> list[str]:
    """What a scan's link counted (:meth:`drivers.base.Link.counters`) says about its
    ``--timeout`` and endpoint, for people: one line each, none if nothing was dropped."""
    hints = []
    if late := counts.get("late_replies", 0):
        hints.append(
            f"{late} repl{'y' if late == 1 else 'ies'} came after the request had timed out: "
            f"a unit is slower than {timeout:g} s; scan again with a longer --timeout"
        )
    # on a bus, a late reply is dropped before the next request or skipped during it
    late_or_master = (
        f"a reply after its timeout (a unit slower than {timeout:g} s; scan again with a "
        "longer --timeout) or another master on the bus"
    )
    if unrequested := counts.get("unrequested_bytes", 0):
        hints.append(f"{unrequested} byte(s) came while no request was out: {late_or_master}")
    if foreign := counts.get("other_unit_replies", 0):
        hints.append(f"{foreign} request(s) got only another unit's reply: {late_or_master}")
    if unframed := counts.get("unframed_bytes", 0):
        hints.append(f"{unframed} byte(s) came that are not Modbus TCP: is it a Modbus server?")
    return hints


def port_holders(port: str) -> list[str]:
    """The other processes that have this serial port open (Linux ``/proc``), described as
    ``"pid 1234 (device-bridge run -c devices.yaml)"``; empty where that cannot be told."""
    target = os.path.realpath(port)
    holders = []
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    for pid in pids:
        if int(pid) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.path.realpath(f"/proc/{pid}/fd/{fd}") == target for fd in fds):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                command = file.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # gone, or not ours to look at
        holders.append(f"pid {pid} ({command})")
    return holders


def draft_config(
    driver: str, connection: dict[str, Any], reports: list[UnitReport], timeout: float
) -> str:
    """A device file with one device per unit found and one point per readable block,
    for the user to name and type; it passes ``check`` and reads as it stands."""
    lines = [
        "# Drafted by `device-bridge scan`: one device per unit that answered, one point per",
        "# readable block (its first address, as uint16 or bool). Name the devices and points,",
        "# give each its type from the device's manual, and check it with",
        "# `device-bridge check --connect -c FILE`.",
        "devices:",
    ]
    flow = ", ".join(f"{key}: {json.dumps(value)}" for key, value in connection.items())
    for report in reports:
        points = [
            f"      - {{id: {table}-{start}, table: {table}, address: {start}, "
            f"type: {'bool' if table in BIT_TABLES else 'uint16'}}}  # readable: {start}..{end}"
            for table in TABLES
            for start, end in report.ranges.get(table, [])
        ]
        if not points:
            lines.append(f"  # unit {report.unit} answered, but nothing was readable")
            continue
        lines += [
            f"  - id: unit-{report.unit}",
            f"    driver: {driver}",
            f"    connection: {{{flow}}}",
            f"    unit: {report.unit}",
            f"    timeout: {max(timeout, 0.5):g}",
            "    points:",
            *points,
        ]
    return "\n".join(lines) + "\n"
