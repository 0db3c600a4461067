"""The ``probe`` and ``scan`` commands: their options, and turning them into tool calls.

Exit status: 0 on an answer, 1 on no answer (a refused connection, silence, an exception
code), 2 on bad arguments or a bad device file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from tqdm import tqdm

from bridge.config import ConfigError, load_config
from bridge.tools.probe import (
    NoAnswer,
    open_link,
    probe_device,
    probe_device_config,
    probe_range,
    render_device,
    render_range,
)
from bridge.tools.scan import (
    TABLES,
    UnitReport,
    answer_hints,
    draft_config,
    find_units,
    parse_span,
    port_holders,
    survey,
)
from drivers.base import LinkError
from drivers.modbus.config import parse_register_notation

TRANSPORTS = ("modbus-tcp", "modbus-rtu")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Defaults shown in ``--help`` (where an option has one and its help does not say it
    already), and the examples in the epilog kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


class UsageError(Exception):
    """Arguments that do not make sense together; exit status 2."""


def _connection_options(parser: argparse.ArgumentParser, timeout: float) -> None:
    group = parser.add_argument_group("where (modbus-tcp: --host, --port; modbus-rtu: --port)")
    group.add_argument("--host", help="modbus-tcp: device or gateway address")
    group.add_argument("--port", help="modbus-tcp: TCP port (502); modbus-rtu: serial device")
    group.add_argument("--baudrate", type=int, default=19200, help="modbus-rtu line speed")
    group.add_argument("--parity", choices=("N", "E", "O"), default="N", help="modbus-rtu")
    group.add_argument("--bytesize", type=int, choices=(7, 8), default=8, help="modbus-rtu")
    group.add_argument("--stopbits", type=int, choices=(1, 2), default=1, help="modbus-rtu")
    group.add_argument("--timeout", type=float, default=timeout, help="seconds per request")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--force", action="store_true", help="run even if another process has the serial port"
    )


def add_parsers(commands: Any) -> None:
    """Add ``probe`` and ``scan`` to the ``device-bridge`` subcommands."""
    probe = commands.add_parser(
        "probe",
        help="read one device once and show how its registers decode",
        formatter_class=Formatter,
        description="Read raw data once and show it decoded under every layout, so that a "
        "wrong byte or word order is seen before it is published.",
        epilog="examples:\n"
        "  device-bridge probe modbus-tcp --host 192.168.1.50 --address 30001 --count 4\n"
        "  device-bridge probe modbus-rtu --port /dev/ttyUSB0 --unit 3 --address 40001\n"
        "  device-bridge probe -c devices.yaml boiler",
    )
    probe.add_argument("target", help="modbus-tcp or modbus-rtu; with -c, a device id")
    probe.add_argument("-c", "--config", help="device file: probe one of its devices")
    probe.add_argument("--unit", type=int, default=1, help="Modbus unit id")
    probe.add_argument("--table", choices=TABLES, help="table (implied by notation)")
    probe.add_argument(
        "--address",
        help="'30001' (1-based notation, as in the device file) or a 0-based protocol "
        "address with --table (addresses above 9999 in hex, 0x2710, if they look like notation)",
    )
    probe.add_argument("--count", type=int, default=2, help="registers or bits to read")
    _connection_options(probe, 1.0)

    scan = commands.add_parser(
        "scan",
        help="find the unit ids that answer on a bus or endpoint (set-up time only)",
        formatter_class=Formatter,
        description="Ask every unit id once, then find the readable blocks of each table "
        "of the units that answered. A set-up-time command: it refuses a serial port "
        "another process (a running bridge) has open, unless --force.",
        epilog="examples:\n"
        "  device-bridge scan modbus-rtu --port /dev/ttyUSB0 --baudrate 9600 --units 1-32\n"
        "  device-bridge scan modbus-tcp --host 192.168.1.50 --write-config draft.yaml",
    )
    scan.add_argument("transport", choices=TRANSPORTS)
    scan.add_argument("--units", default="1-247", help="unit ids to ask (1-247, 1,3,10-12)")
    scan.add_argument("--range", default="0-99", help="addresses searched in each table")
    scan.add_argument("--write-config", metavar="FILE", help="draft a device file here")
    _connection_options(scan, 0.1)


def _connection(args: argparse.Namespace, transport: str) -> dict[str, Any]:
    if transport == "modbus-tcp":
        if not args.host:
            raise UsageError("modbus-tcp needs --host")
        try:
            port = int(args.port or 502)
        except ValueError:
            raise UsageError(f"--port {args.port!r}: a TCP port is a number") from None
        return {"host": args.host, "port": port}
    if not args.port:
        raise UsageError("modbus-rtu needs --port, the serial device (e.g. /dev/ttyUSB0)")
    refuse_if_held(args.port, args.force)
    return {"port": args.port, "baudrate": args.baudrate, "parity": args.parity,
            "bytesize": args.bytesize, "stopbits": args.stopbits}  # fmt: skip


def refuse_if_held(port: str, force: bool) -> None:
    """NoAnswer if another process (a running bridge) has this serial port open."""
    if not force and "://" not in port and (holders := port_holders(port)):
        raise NoAnswer(
            f"{port} is open in {'; '.join(holders)}: another master on the bus would "
            "garble both; stop it first (this is a set-up-time command), or give --force"
        )


def parse_address(text: str, table: str | None) -> tuple[str, int]:
    """``--address`` and ``--table`` -> (table, protocol address)."""
    if len(text) in (5, 6) and text.isdigit() and text[0] in "0134":
        notation_table, address = parse_register_notation(text)
        if table is not None and table != notation_table:
            raise UsageError(f"--address {text} is in table {notation_table}, not {table}")
        return notation_table, address
    if table is None:
        raise UsageError(f"--address {text}: give --table, or notation such as 40001")
    try:
        address = int(text, 0)
    except ValueError:
        raise UsageError(f"--address {text!r}: give a number or notation such as 40001") from None
    if not 0 <= address <= 65535:
        raise UsageError(f"--address {text}: protocol addresses are 0..65535")
    return table, address


def _emit(args: argparse.Namespace, document: dict[str, Any], lines: list[str]) -> None:
    print(json.dumps(document, indent=2) if args.json else "\n".join(lines))


def run_probe(args: argparse.Namespace) -> int:
    """``device-bridge probe``."""
    if args.config:
        config = load_config(args.config)
        port = getattr(getattr(config.device(args.target), "connection", None), "port", None)
        if isinstance(port, str):
            refuse_if_held(port, args.force)
        report = asyncio.run(probe_device(config, args.target))
        _emit(args, report, render_device(report))
        return 1 if any("error" in p for p in report["points"]) else 0
    if args.target not in TRANSPORTS:
        raise UsageError(f"probe {args.target!r}: give modbus-tcp or modbus-rtu, or -c FILE")
    if args.address is None:
        raise UsageError("probe needs --address (and --count)")
    table, address = parse_address(args.address, args.table)
    limit = 2000 if table in ("coil", "discrete") else 125
    if not 1 <= args.count <= limit or address + args.count > 65536:
        raise UsageError(f"--count {args.count}: 1..{limit}, within the 65536 addresses")
    device = probe_device_config(
        args.target, _connection(args, args.target), args.unit, args.timeout
    )
    report = asyncio.run(probe_range(device, table, address, args.count))
    _emit(args, report, render_range(report))
    return 0


async def _scan(
    args: argparse.Namespace, first: int, last: int
) -> tuple[list[UnitReport], dict[str, int]]:
    """The units that answered, and what the link counted as dropped meanwhile."""
    units = parse_span(args.units, 1, 247, "--units")
    device = probe_device_config(
        args.transport, _connection(args, args.transport), units[0], args.timeout
    )
    where = f"{args.host}:{args.port or 502}" if args.transport == "modbus-tcp" else args.port
    print(
        f"scan: asking units {args.units} on {where}, {args.timeout:g} s each. A set-up-time "
        "command: a bridge polling the same bus or endpoint would see its requests.",
        file=sys.stderr,
    )
    bar = tqdm(total=len(units), unit="unit", file=sys.stderr, disable=not sys.stderr.isatty())

    def progress(unit: int, answered: bool) -> None:
        bar.update(1)
        if answered:
            bar.write(f"scan: unit {unit} answers", file=sys.stderr)

    link = await open_link(device)
    try:
        reports = await find_units(link, device, units, progress)
        bar.close()
        for report in reports:
            await survey(link, device, report, first, last)
    except LinkError as exc:
        raise NoAnswer(str(exc)) from None
    finally:
        bar.close()
        await link.close()
    return reports, dict(link.counters(device.id))


def run_scan(args: argparse.Namespace) -> int:
    """``device-bridge scan``."""
    try:
        span = parse_span(args.range, 0, 65535, "--range")
        first, last = span[0], span[-1]
        reports, dropped = asyncio.run(_scan(args, first, last))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for hint in answer_hints(dropped, args.timeout):
        print(f"scan: {hint}", file=sys.stderr)
    document = {"transport": args.transport, "units": [r.as_json() for r in reports],
                "range": {"start": first, "end": last}, "driver": dropped}  # fmt: skip
    lines = [f"{len(reports)} unit(s) answer: {', '.join(str(r.unit) for r in reports) or '-'}"]
    for report in reports:
        lines.append(f"unit {report.unit}: {report.answer}")
        for table in TABLES:
            blocks = ", ".join(f"{a}..{b}" for a, b in report.ranges.get(table, [])) or "-"
            note = f"  ({report.notes[table]})" if table in report.notes else ""
            lines.append(f"  {table:<9} {blocks}{note}")
    lines.append(f"readable blocks searched within {first}..{last} (--range to change)")
    if args.write_config:
        connection = _connection(args, args.transport)
        text = draft_config(args.transport, connection, reports, args.timeout)
        with open(args.write_config, "w", encoding="utf-8") as file:
            file.write(text)
        lines.append(f"drafted {args.write_config}: name and type its points, then check it")
    _emit(args, document, lines)
    return 0 if reports else 1


def run_tool(args: argparse.Namespace) -> int:
    """Run ``probe`` or ``scan``; messages on stderr, the result on stdout."""
    try:
        return run_probe(args) if args.command == "probe" else run_scan(args)
    except UsageError as exc:
        print(f"device-bridge {args.command}: {exc}", file=sys.stderr)
        return 2
    except NoAnswer as exc:
        if args.json:
            print(json.dumps({"error": str(exc)}))
        print(f"device-bridge {args.command}: {exc}", file=sys.stderr)
        return 1
    except ConfigError:
        raise
