"""The ``device-bridge`` command: run, demo, check, probe, scan, simulate (README, "The
command line").

Exit status: 0 success, 2 bad configuration or arguments (every problem named with its
place), 1 anything else. SIGINT and SIGTERM stop cleanly with 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from bridge import __version__, event_loop

try:
    from bridge.config import BridgeConfig, ConfigError, load_config
    from bridge.logs import environment_logging, setup_logging
    from bridge.registry import available_drivers
    from bridge.server import serve_until_stopped
    from bridge.tools.cli import Formatter
    from bridge.tools.cli import add_parsers as add_tool_parsers
except ModuleNotFoundError as missing:
    # `pip install device-bridge` is the client alone (README, "For agents"): say what to
    # install instead of a traceback.
    raise SystemExit(
        f"device-bridge: the service is not installed ({missing.name} is missing); "
        "install it with: pip install 'device-bridge[service]'"
    ) from None

SIMULATORS = ("modbus-tcp", "modbus-rtu", "serial-line")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="device-bridge",
        description="Poll devices and serve their readings over REST and WebSocket.",
    )
    parser.add_argument("--version", action="version", version=f"device-bridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the bridge on a device file",
        formatter_class=Formatter,
        description="Poll the devices of a device file and serve their readings. SIGINT and "
        "SIGTERM stop it; SIGHUP reloads the file (README: Reloading the device file).",
        epilog="example:\n  device-bridge run -c devices.yaml\n"
        "  BRIDGE_PORT=5001 BRIDGE_WRITE_TOKEN=s3cret device-bridge run -c devices.yaml",
    )
    run.add_argument("-c", "--config", help="device file (default: $BRIDGE_CONFIG)")

    demo = commands.add_parser(
        "demo",
        help="run simulators and a bridge on them; no hardware",
        formatter_class=Formatter,
        epilog="example:\n  BRIDGE_WRITE_TOKEN=s3cret device-bridge demo --port 5001",
    )
    demo.add_argument("--port", type=int, default=None, help="API port (default: 5000)")

    check = commands.add_parser(
        "check",
        help="validate a device file and print the poll plan",
        formatter_class=Formatter,
        description="Report every mistake in the device file at once (exit 2), or print the "
        "requests each poll will send.",
        epilog="examples:\n  device-bridge check -c devices.yaml\n"
        "  device-bridge check --connect -c devices.yaml",
    )
    check.add_argument("-c", "--config", help="device file (default: $BRIDGE_CONFIG)")
    check.add_argument(
        "--connect",
        action="store_true",
        help="also open every link once and poll each device once (exit 1 if one is silent)",
    )

    add_tool_parsers(commands)

    simulate = commands.add_parser(
        "simulate",
        help="run one device simulator standalone",
        formatter_class=Formatter,
        epilog="examples:\n  device-bridge simulate modbus-tcp --port 5020\n"
        "  device-bridge simulate modbus-rtu --baudrate 9600 --wire-time --link-dir /tmp/dev\n"
        "  device-bridge simulate serial-line --mode stream --format json",
    )
    simulate.add_argument("kind", choices=SIMULATORS)
    simulate.add_argument("--host", default="127.0.0.1", help="listen address (modbus-tcp)")
    simulate.add_argument("--port", type=int, default=5020, help="listen port (modbus-tcp)")
    simulate.add_argument("--profile", help="register map profile (YAML); default: the demo's")
    simulate.add_argument(
        "--baudrate", type=int, help="line speed (modbus-rtu, default 19200); see --wire-time"
    )
    simulate.add_argument(
        "--wire-time",
        action="store_true",
        help="answer no sooner than a real line at --baudrate would (modbus-rtu)",
    )
    simulate.add_argument(
        "--mode", choices=("query", "stream"), help="answer commands or send lines by itself "
        "(serial-line, default query)",
    )  # fmt: skip
    simulate.add_argument(
        "--format", choices=("sics", "json", "csv"), help="line format (serial-line, default sics)"
    )
    simulate.add_argument(
        "--interval", type=float, help="seconds between lines in stream mode (serial-line, 0.1)"
    )
    simulate.add_argument(
        "--link-dir", help="also make DIR/ttyRTU0 or DIR/ttyLINE0 point at the pty"
    )
    return parser


def _config_path(given: str | None) -> str:
    path = given or os.environ.get("BRIDGE_CONFIG")
    if not path:
        raise ConfigError("device-bridge", ["no device file: give -c FILE or set BRIDGE_CONFIG"])
    return path


def print_plan(config: BridgeConfig, source: str) -> None:
    """What ``check`` prints: devices, links, and the requests of each poll cycle."""
    drivers = available_drivers()
    print(f"{source}: ok, {len(config.devices)} device(s) on {len(config.links)} link(s)")
    print("links:")
    for link in config.links:
        print(f"  {link.key} ({link.driver.name}): {', '.join(d.id for d in link.devices)}")
    print("devices:")
    for device in config.devices:
        lines = drivers[device.driver].describe(device)
        print(
            f"  {device.id} ({device.driver}, every {device.interval:g} s, timeout "
            f"{device.timeout:g} s): {len(device.points)} point(s), "
            f"{len(lines)} request(s) per poll"
        )
        for line in lines:
            print(f"    {line}")


def _log_as_the_environment_says() -> None:
    """Logging for commands without a device file: BRIDGE_LOG_LEVEL and BRIDGE_LOG_FORMAT."""
    try:
        setup_logging(*environment_logging())
    except ValueError as exc:
        raise ConfigError("device-bridge", [str(exc)]) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "simulate":
            from simulators.cli import simulate

            _log_as_the_environment_says()
            return simulate(
                args.kind, args.host, args.port, args.profile,
                baudrate=args.baudrate, wire_time=args.wire_time, mode=args.mode,
                format=args.format, interval=args.interval, link_dir=args.link_dir,
            )  # fmt: skip
        if args.command in ("probe", "scan"):
            from bridge.tools.cli import run_tool

            return run_tool(args)
        if args.command == "demo":
            from bridge.demo import run_demo

            _log_as_the_environment_says()
            return event_loop.run(run_demo(args.port))
        source = _config_path(args.config)
        config = load_config(source)
        if args.command == "check":
            for warning in config.warnings:
                print(warning, file=sys.stderr)
            print_plan(config, source)
            if args.connect:
                from bridge.tools.connect import connect_all, print_answers

                return print_answers(asyncio.run(connect_all(config)))
            return 0
        setup_logging(config.settings.log_level, config.settings.log_format)
        for warning in config.warnings:
            logging.getLogger("bridge.config").warning("%s", warning)
        event_loop.run(serve_until_stopped(config), config.settings.event_loop)
        return 0
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"device-bridge: {exc}", file=sys.stderr)
        return 1
