"""The JSON format: the stream's frames on plain topics under the bridge's prefix.

- ``<prefix>/<device>/readings``: one ``readings`` frame per device poll, with ``boot``
  (QoS 1, through the outbox); ``"historical": true`` on frames sent from the backlog; a
  ``gap`` frame where the outbox had to drop frames;
- ``<prefix>/<device>/<point>``: the latest reading of each point (retained);
- ``<prefix>/<device>/status``: the device's status frame (retained);
- ``<prefix>/state``: ``online`` (retained) while connected, ``offline`` as the Last Will
  and on a clean stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiomqtt

from bridge import wire
from bridge.north.outbox import Message
from bridge.north.writes import write_from_mqtt
from bridge.readings import PublishedReading
from bridge.wire import encode

if TYPE_CHECKING:
    from bridge.north.link import Link
    from bridge.service import Bridge

ONLINE = b"online"
OFFLINE = b"offline"
_HISTORICAL = b'{"historical":true,'


class JsonFormat:
    """Topics and payloads of the JSON format for one bridge (prefix and boot)."""

    name = "json"

    def __init__(self, prefix: str, bridge: Bridge, writes: bool) -> None:
        self.prefix = prefix
        self.bridge = bridge
        self.boot = bridge.store.boot
        self.writes = writes
        self.state_topic = f"{prefix}/state"
        self._boot_field = b'{"boot":' + encode(self.boot) + b","

    # -- on the connection --------------------------------------------------------------

    def will(self) -> aiomqtt.Will:
        return aiomqtt.Will(self.state_topic, OFFLINE, qos=1, retain=True)

    def subscriptions(self) -> list[str]:
        return [self.set_filter()] if self.writes else []

    async def connected(self, link: Link) -> None:
        """Say online, then (re)publish every point's latest reading and every status."""
        task = link.send(self.state_topic, ONLINE, retain=True)
        if task is not None:
            await task
        for device_id, runtime in self.bridge.devices.items():
            link.put_retained(self.status_topic(device_id), self.bridge.status_frame(runtime))
            for reading in self.bridge.store.device_readings(device_id):
                if reading.seq:
                    link.put_retained(self.point_topic(device_id, reading.point), reading)

    async def stopping(self, link: Link) -> None:
        task = link.send(self.state_topic, OFFLINE, retain=True)
        if task is not None:
            await task

    async def received(self, link: Link, message: aiomqtt.Message) -> None:
        """A write request on ``<prefix>/<device>/<point>/set``: do it, answer the result."""
        parts = str(message.topic).split("/")
        if not self.writes or len(parts) < 3 or parts[-1] != "set":
            return
        device, point = parts[-3], parts[-2]
        payload = message.payload if isinstance(message.payload, bytes) else b""
        answer = await write_from_mqtt(self.bridge, device, point, payload)
        link.send(f"{message.topic}/result", encode(answer))

    def state_payload(self, item: Any) -> bytes:
        """A point's retained latest reading, or a device's retained status frame."""
        if isinstance(item, bytes):
            return item
        if isinstance(item, PublishedReading):
            return encode({**item.to_json(), "boot": self.boot})
        return encode(item)

    # -- the producer side ------------------------------------------------------------

    def published(self, link: Link, device: str, readings: Sequence[PublishedReading]) -> None:
        """Readings were published: their points' retained latest readings follow."""
        for reading in readings:
            link.put_retained(self.point_topic(device, reading.point), reading)

    def devices_changed(
        self, link: Link, added: Sequence[str], removed: dict[str, list[str]]
    ) -> None:
        """A removed device's retained topics are cleared (an empty retained message);
        an added one's appear with its first readings."""
        for device, points in removed.items():
            link.put_retained(self.status_topic(device), b"")
            for point in points:
                link.put_retained(self.point_topic(device, point), b"")

    def status_changed(self, link: Link, device: str, frame: dict[str, Any]) -> None:
        link.put_retained(self.status_topic(device), frame)

    def readings_topic(self, device: str) -> str:
        return f"{self.prefix}/{device}/readings"

    def point_topic(self, device: str, point: str) -> str:
        return f"{self.prefix}/{device}/{point}"

    def status_topic(self, device: str) -> str:
        return f"{self.prefix}/{device}/status"

    def set_filter(self) -> str:
        """The subscription for writes: ``<prefix>/<device>/<point>/set``."""
        return f"{self.prefix}/+/+/set"

    def readings_message(
        self, link: Link, device: str, readings: Sequence[PublishedReading], frame: bytes | None
    ) -> tuple[str, bytes] | None:
        """One device poll's readings frame with ``boot``, for the outbox.

        Made from the stream's encoded frame of the same readings when given (``boot``
        spliced in front, not encoded again).
        """
        if frame is None:
            frame = wire.readings(readings)
        return self.readings_topic(device), self._boot_field + frame[1:]

    def gap_message(self, stream: str, since: int, until: int, frames: int) -> tuple[str, bytes]:
        """Readings of one device after ``since`` up to ``until`` were dropped (outbox full).

        ``stream`` is ``<boot>/<device>``, as the outbox keys its frames: the gap names
        the boot whose readings were lost, which may be an earlier process's.
        """
        boot, device = stream.split("/", 1)
        frame = {
            "type": "gap",
            "boot": boot,
            "device": device,
            "since": since,
            "until": until,
            "dropped_frames": frames,
        }
        return self.readings_topic(device), encode(frame)

    def finish(self, message: Message, historical: bool) -> bytes:
        """The payload to send: a backlog frame is marked historical (no re-encoding)."""
        if historical and message.payload.startswith(b'{"boot":'):
            return _HISTORICAL + message.payload[1:]
        return message.payload
