"""North: the bridge's published readings, through the outbox, to the broker.

The bridge calls ``readings`` and ``status`` from its publish path (plain calls, never
awaiting); the outbox keeps each device poll's message until the broker acknowledged it,
and the link sends them in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bridge.north.json_format import JsonFormat
from bridge.north.link import Link
from bridge.north.outbox import Outbox
from bridge.north.settings import MqttSettings
from bridge.readings import PublishedReading

if TYPE_CHECKING:
    from bridge.service import Bridge


class North:
    """The outbox and the link of one bridge, in the format the settings chose."""

    def __init__(self, settings: MqttSettings, bridge: Bridge) -> None:
        self.settings = settings
        self.boot = bridge.store.boot
        if settings.format == "sparkplug":
            from bridge.north.sparkplug import SparkplugFormat

            self.format: JsonFormat | SparkplugFormat = SparkplugFormat(
                settings.prefix, bridge, settings.writes
            )
        else:
            self.format = JsonFormat(settings.prefix, bridge, settings.writes)
        self.outbox = Outbox(
            settings.outbox,
            self.format.name,
            settings.outbox_max_bytes,
            settings.outbox_max_age,
            self.format.gap_message,
        )
        self.link = Link(settings, self.outbox, self.format)

    async def start(self) -> None:
        """Open the outbox (what an earlier process left is sent first) and connect."""
        await self.outbox.open()
        self.link.start()

    async def stop(self) -> None:
        """Say offline, disconnect, and commit the outbox; what is unsent stays in it."""
        await self.link.stop()
        await self.outbox.close()

    def readings(
        self, device: str, readings: Sequence[PublishedReading], frame: bytes | None
    ) -> None:
        """One device poll's published readings (in seq order) into the outbox; ``frame`` is
        the stream's ``readings`` frame of them, already encoded (the JSON format's base)."""
        if not readings:
            return
        message = self.format.readings_message(self.link, device, readings, frame)
        if message is None:
            return
        topic, payload = message
        # Keyed by boot and device: a gap names the boot whose readings it lost.
        stream = f"{self.boot}/{device}"
        self.outbox.append(stream, topic, payload, readings[0].seq, readings[-1].seq)
        self.format.published(self.link, device, readings)

    def status(self, device: str, frame: dict[str, Any]) -> None:
        """A device's status changed."""
        self.format.status_changed(self.link, device, frame)

    def devices_changed(self, added: Sequence[str], removed: dict[str, list[str]]) -> None:
        """Devices were added or removed at run time (a reload): ``removed`` maps each
        removed device to its point ids. JSON clears their retained topics; Sparkplug
        sends DDEATH for removed devices and DBIRTH for added ones."""
        self.format.devices_changed(self.link, added, removed)

    @property
    def connected(self) -> bool:
        return self.link.connected

    def describe(self) -> dict[str, Any]:
        """The connection and the outbox, as ``/api/v1/north`` shows them."""
        return self.link.status()
