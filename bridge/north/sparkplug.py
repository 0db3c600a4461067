"""The Sparkplug B format: the bridge as an edge node, its devices as Sparkplug devices.

Topics are ``spBv1.0/<group>/<type>/<edge node>[/<device>]`` with ``<group>/<edge node>``
taken from ``BRIDGE_MQTT_TOPIC``. On every connection: NBIRTH (``seq`` 0, the connection's
``bdSeq``, the ``Node Control/Rebirth`` metric), then a DBIRTH per device with every point;
then DDATA with the points that changed, from the outbox (``is_historical`` on the
backlog). NDEATH with the same ``bdSeq`` is the Will, and is published on a clean stop.
A device that goes offline gets a DDEATH, and a DBIRTH before its first DDATA once it
answers again; a device offline when the node is born gets its DBIRTH with the others and
its DDEATH after the backlog. Device deaths and births keep their place among the
outbox's DDATA (``Link.send_in_order``), and a dead device sends no DDATA.
``seq`` runs 0..255 over every message but NDEATH, and is set when a message is sent (the
outbox keeps payloads without it). An NCMD ``Node Control/Rebirth`` = true gets the births
again. Payloads are the specification's protobuf schema (``sparkplug_b.proto``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiomqtt

from bridge.north.outbox import Message
from bridge.north.sparkplug_b_pb2 import Payload
from bridge.north.writes import write_value
from bridge.readings import PublishedReading
from bridge.states import Quality, Status
from drivers.base import PointConfig

if TYPE_CHECKING:
    from bridge.north.link import Link
    from bridge.service import Bridge

NAMESPACE = "spBv1.0"
# Data types of the specification (Payload's comment in sparkplug_b.proto).
INT32, INT64, DOUBLE, BOOLEAN, STRING = 3, 4, 10, 11, 12
REBIRTH = "Node Control/Rebirth"
BD_SEQ = "bdSeq"
# Node metrics that announce what the outbox had to drop (the JSON format's gap frame).
GAP_DEVICE, GAP_SINCE, GAP_UNTIL, GAP_FRAMES = (
    "Outbox/Gap Device", "Outbox/Gap Since", "Outbox/Gap Until", "Outbox/Gap Dropped Frames"
)  # fmt: skip
#: the "Quality" property of a metric that is not good (the convention of Sparkplug hosts:
#: 192 good, 500 stale, 0 bad); good metrics carry none
QUALITY = {Quality.STALE: 500, Quality.BAD: 0}
_U64 = (1 << 64) - 1


def datatype(point: PointConfig) -> int:
    """The Sparkplug data type of a point's values."""
    kind = getattr(point, "type", "float")
    if kind == "bool":
        return BOOLEAN
    if kind in ("string", "str"):
        return STRING
    scaled = getattr(point, "scale", 1.0) != 1.0 or getattr(point, "offset", 0.0) != 0.0
    if kind.startswith("float") or scaled:
        return DOUBLE
    return INT64


def set_value(metric: Payload.Metric, kind: int, value: Any) -> None:
    """Put a value in a metric as its data type says (signed integers as two's complement)."""
    if value is None:
        metric.is_null = True
    elif kind == BOOLEAN:
        metric.boolean_value = bool(value)
    elif kind == STRING:
        metric.string_value = str(value)
    elif kind == DOUBLE:
        metric.double_value = float(value)
    else:
        metric.long_value = int(value) & _U64


def millis(ts: float | None) -> int:
    return int((ts if ts is not None else time.time()) * 1000)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class SparkplugFormat:
    """Topics, births and payloads of one edge node."""

    name = "sparkplug"

    def __init__(self, prefix: str, bridge: Bridge, writes: bool) -> None:
        self.group, self.node = prefix.split("/")
        self.bridge = bridge
        self.writes = writes
        self.bd_seq = -1  # the current connection's: 0 on the first
        self._bd_seq_next = 0
        self.seq = 0
        self._kinds: dict[tuple[str, str], int] = {}
        #: devices whose DDEATH is sent or on its way, and no DBIRTH since
        self._dead: set[str] = set()

    def topic(self, kind: str, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group}/{kind}/{self.node}"
        return base if device is None else f"{base}/{device}"

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (seq + 1) % 256
        return seq

    # -- on the connection --------------------------------------------------------------

    def will(self) -> aiomqtt.Will:
        """NDEATH with the next connection's ``bdSeq`` (one more than the last connection's:
        attempts that never connected do not count)."""
        self._bd_seq_next = (self.bd_seq + 1) % 256
        death = self._death(self._bd_seq_next)
        return aiomqtt.Will(self.topic("NDEATH"), death, qos=1, retain=False)

    def _death(self, bd_seq: int) -> bytes:
        payload = Payload(timestamp=millis(None))
        payload.metrics.add(name=BD_SEQ, datatype=INT64, long_value=bd_seq)
        return payload.SerializeToString()

    def subscriptions(self) -> list[str]:
        topics = [self.topic("NCMD")]
        if self.writes:
            topics.append(self.topic("DCMD", "+"))
        return topics

    async def connected(self, link: Link) -> None:
        self.bd_seq = self._bd_seq_next
        self.births(link)

    def births(self, link: Link) -> None:
        """NBIRTH (``seq`` 0) and every device's DBIRTH, sent in this order, now."""
        now = millis(None)
        node = Payload(timestamp=now, seq=0)
        self.seq = 1
        node.metrics.add(name=BD_SEQ, datatype=INT64, long_value=self.bd_seq, timestamp=now)
        node.metrics.add(name=REBIRTH, datatype=BOOLEAN, boolean_value=False, timestamp=now)
        for name, kind in ((GAP_DEVICE, STRING), (GAP_SINCE, INT64), (GAP_UNTIL, INT64),
                           (GAP_FRAMES, INT64)):  # fmt: skip
            node.metrics.add(name=name, datatype=kind, is_null=True, timestamp=now)
        link.send(self.topic("NBIRTH"), node.SerializeToString(), qos=0)
        for device_id in self.bridge.devices:
            device = Payload(timestamp=now, seq=self._next_seq())
            self._add_metrics(device, device_id, self.bridge.store.device_readings(device_id))
            link.send(self.topic("DBIRTH", device_id), device.SerializeToString(), qos=0)
        self._dead.clear()
        for device_id, runtime in self.bridge.devices.items():
            if runtime.status == Status.OFFLINE:
                self._die(link, device_id)

    async def stopping(self, link: Link) -> None:
        task = link.send(self.topic("NDEATH"), self._death(self.bd_seq))
        if task is not None:
            await task

    async def received(self, link: Link, message: aiomqtt.Message) -> None:
        """NCMD: a rebirth request; DCMD (writes on): each metric written to its point."""
        topic = str(message.topic)
        body = message.payload if isinstance(message.payload, bytes) else b""
        try:
            payload = Payload.FromString(body)
        except Exception:  # a malformed command is ignored, like any bad input
            return
        if topic == self.topic("NCMD"):
            if any(m.name == REBIRTH and m.boolean_value for m in payload.metrics):
                self.births(link)
        elif self.writes and topic.startswith(self.topic("DCMD") + "/"):
            device = topic.rsplit("/", 1)[1]
            for metric in payload.metrics:
                field = metric.WhichOneof("value")
                if field is None:
                    continue
                value = getattr(metric, field)
                if field == "long_value" and metric.datatype in (1, 2, 3, 4) and value >> 63:
                    value -= 1 << 64  # signed integers travel as two's complement
                # The outcome shows in the audit line and in the DDATA of the read-back.
                await write_value(self.bridge, device, metric.name, value)

    def state_payload(self, item: Any) -> bytes:
        return b""  # nothing is retained in Sparkplug

    # -- the producer side ------------------------------------------------------------

    def _add_metrics(
        self, payload: Payload, device: str, readings: Sequence[PublishedReading]
    ) -> None:
        for reading in readings:
            kind = self._kind(device, reading.point)
            metric = payload.metrics.add(
                name=reading.point, datatype=kind, timestamp=millis(reading.ts)
            )
            set_value(metric, kind, None if reading.quality == Quality.BAD else reading.value)
            if reading.quality != Quality.GOOD:
                metric.properties.keys.append("Quality")
                metric.properties.values.add(type=INT32, int_value=QUALITY[reading.quality])

    def _kind(self, device: str, point: str) -> int:
        key = (device, point)
        kind = self._kinds.get(key)
        if kind is None:
            runtime = self.bridge.devices.get(device)
            config = runtime.config.point(point) if runtime is not None else None
            kind = self._kinds[key] = datatype(config) if config is not None else DOUBLE
        return kind

    def devices_changed(
        self, link: Link, added: Sequence[str], removed: dict[str, list[str]]
    ) -> None:
        """DDEATH for each removed device, DBIRTH with every point for each added one."""
        self._kinds.clear()
        for device in removed:
            if device not in self._dead:
                self._die(link, device)
            self._dead.discard(device)
        for device in added:
            self._birth(link, device)

    def _die(self, link: Link, device: str) -> None:
        """A DDEATH for the device, in order; no DDATA of it until its DBIRTH."""
        self._dead.add(device)
        death = Payload(timestamp=millis(None)).SerializeToString()
        link.send_in_order(lambda: (self.topic("DDEATH", device), self._with_seq(death)))

    def _birth(self, link: Link, device: str) -> None:
        """A DBIRTH with every point as it is now, in order."""
        self._dead.discard(device)
        birth = Payload(timestamp=millis(None))
        self._add_metrics(birth, device, self.bridge.store.device_readings(device))
        body = birth.SerializeToString()
        link.send_in_order(lambda: (self.topic("DBIRTH", device), self._with_seq(body)))

    def readings_message(
        self,
        link: Link,
        device: str,
        readings: Sequence[PublishedReading],
        frame: bytes | None = None,
    ) -> tuple[str, bytes] | None:
        """A DDATA payload without ``seq`` (set when it is sent), for the outbox; the
        stream's JSON ``frame`` is of no use here. For a dead device: None (nothing to
        send) unless a reading is good, which makes its DBIRTH go first."""
        if device in self._dead:
            if all(r.quality != Quality.GOOD for r in readings):
                return None  # its death said so: every metric of it is stale
            self._birth(link, device)
        payload = Payload(timestamp=millis(None))
        self._add_metrics(payload, device, readings)
        return self.topic("DDATA", device), payload.SerializeToString()

    def gap_message(self, stream: str, since: int, until: int, frames: int) -> tuple[str, bytes]:
        """An NDATA saying which readings of which device (``<boot>/<device>``, the outbox's
        key) the outbox dropped."""
        device = stream.split("/", 1)[1]
        now = millis(None)
        payload = Payload(timestamp=now)
        payload.metrics.add(name=GAP_DEVICE, datatype=STRING, string_value=device, timestamp=now)
        payload.metrics.add(name=GAP_SINCE, datatype=INT64, long_value=since, timestamp=now)
        payload.metrics.add(name=GAP_UNTIL, datatype=INT64, long_value=until, timestamp=now)
        payload.metrics.add(name=GAP_FRAMES, datatype=INT64, long_value=frames, timestamp=now)
        return self.topic("NDATA"), payload.SerializeToString()

    def finish(self, message: Message, historical: bool) -> bytes:
        """The payload with its ``seq`` (field 3, appended: no re-encoding unless historical)."""
        body = message.payload
        if historical:
            payload = Payload.FromString(body)
            for metric in payload.metrics:
                metric.is_historical = True
            body = payload.SerializeToString()
        return self._with_seq(body)

    def _with_seq(self, body: bytes) -> bytes:
        """A payload with the next ``seq`` (field 3, appended: no re-encoding)."""
        return body + b"\x18" + _varint(self._next_seq())

    def published(self, link: Link, device: str, readings: Sequence[PublishedReading]) -> None:
        """Nothing beyond the DDATA: Sparkplug keeps no retained state per point."""

    def status_changed(self, link: Link, device: str, frame: dict[str, Any]) -> None:
        """Offline: a DDEATH. Answering again: a DBIRTH, unless its readings brought one.
        Other states show in the metrics' quality (stale, bad)."""
        status = frame["status"]
        if status == Status.OFFLINE and device not in self._dead:
            self._die(link, device)
        elif status in (Status.ONLINE, Status.DEGRADED) and device in self._dead:
            self._birth(link, device)
