"""The ``serial-line`` driver: line-protocol instruments on a serial port.

Devices on one port share one link; the link is a query link or, for a device in
``stream`` mode (which has its port to itself), a stream link: see
:mod:`drivers.serial_line.query` and :mod:`drivers.serial_line.stream` for what a poll
does in each mode, and :mod:`drivers.serial_line.writes` for write templates.
"""

from __future__ import annotations

from collections.abc import Sequence

from drivers.base import Driver, Value
from drivers.serial_line.config import SerialLineDevice
from drivers.serial_line.link import SerialLineLink
from drivers.serial_line.query import QueryLink
from drivers.serial_line.stream import StreamLink
from drivers.serial_line.writes import write_command
from drivers.serial_port import bus_key, check_bus


class SerialLineDriver(Driver[SerialLineDevice]):
    """Line-protocol instruments: ``connection: {port, baudrate, ...}``, one link per port."""

    name = "serial-line"
    device_model = SerialLineDevice

    def link_key(self, device: SerialLineDevice) -> str:
        return bus_key(device.connection)

    def check_link(self, devices: Sequence[SerialLineDevice]) -> list[str]:
        typed = list(devices)
        problems = check_bus([(d.id, d.connection) for d in typed])
        streams = [d for d in typed if d.mode == "stream"]
        port = typed[0].connection.port
        if len(streams) > 1:
            names = " and ".join(repr(d.id) for d in streams)
            problems.append(
                f"devices {names} both stream on port {port}: a stream has no addressing, "
                "so one port carries one stream"
            )
        elif streams and len(typed) > 1:
            others = ", ".join(repr(d.id) for d in typed if d.mode != "stream")
            problems.append(
                f"device {streams[0].id!r} streams on port {port}, which {others} also "
                "use(s): a stream-mode device needs its port to itself (its lines cannot be "
                "told from replies, and every query drops what is waiting)"
            )
        return problems

    def open_link(self, key: str, devices: Sequence[SerialLineDevice]) -> SerialLineLink:
        streaming = any(d.mode == "stream" for d in devices)
        return StreamLink(devices) if streaming else QueryLink(devices)

    def check_write(self, device: SerialLineDevice, point_id: str, value: Value) -> None:
        write_command(device, point_id, value)

    def describe(self, device: SerialLineDevice) -> list[str]:
        points = f"parse {device.parse.kind}, {len(device.points)} point(s)"
        writes = [f"writes {p.id} with {p.write!r}" for p in device.points if p.write]
        if device.mode == "stream":
            return [f"stream of lines ending {device.eol!r}, {points}", *writes]
        return [f"query {device.command!r}, {points}", *writes]
