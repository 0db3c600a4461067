"""The API's bodies as pydantic models: /openapi.json shows them, most handlers build them.

Readings have one serialiser, ``PublishedReading.to_json``: the stream and the reading routes
encode its dicts directly, because they are the hot path; :class:`ReadingOut` documents
that shape (the OpenAPI tests check every answer against it).
"""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_serializer,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from bridge.states import Quality, Status

Value = StrictBool | StrictInt | StrictFloat | StrictStr


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadingOut(Model):
    """One point's value at one moment."""

    device: str
    point: str
    value: Value | None = Field(description="null when quality is bad")
    unit: str | None
    quality: Quality
    ts: str | None = Field(description="when the value was read, UTC ISO 8601; null if never")
    seq: int = Field(ge=0, description="publication counter of the last change (0: never)")
    error: str | None = Field(default=None, description="why the quality is not good")

    @model_serializer(mode="wrap")
    def _without_empty_error(self, serialize: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A reading carries ``error`` only when there is one (README, "The API").
        data: dict[str, Any] = serialize(self)
        if data.get("error") is None:
            data.pop("error", None)
        return data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The serializer above returns a plain dict, of which pydantic's serialization
        # schema knows nothing (an object with any properties): document the fields
        # instead, ``error`` being optional (it has a default) as the serializer makes it.
        fields = {k: v for k, v in core_schema.items() if k != "serialization"}
        return handler(cast(CoreSchema, fields))


class ReadingsOut(Model):
    """Latest readings, with the process's boot id and latest seq (to resume a stream)."""

    boot: str
    seq: int
    readings: list[ReadingOut]


class HistoryOut(Model):
    """Kept readings of one point, oldest first."""

    readings: list[ReadingOut]


class DeviceOut(Model):
    """A device as listed."""

    id: str
    driver: str
    status: Status
    last_success: str | None
    last_error: str | None
    points: list[str]


class DevicesOut(Model):
    devices: list[DeviceOut]
    mqtt: BrokerOut | None = None


class DeviceDetailOut(Model):
    """One device with its point definitions and poll statistics."""

    id: str
    driver: str
    status: Status
    last_success: str | None
    last_error: str | None
    interval: float
    timeout: float
    points: list[dict[str, Any]] = Field(description="the point definitions, as validated")
    stats: dict[str, Any] = Field(description="poll statistics and the driver's own counts")


class LinkDeviceOut(Model):
    """A device on a link, and the requests one poll of it sends."""

    id: str
    plan: list[str] = Field(description="one line per request a poll sends, as `check` prints")


class LinkOut(Model):
    """A link: one connection (a TCP endpoint, a serial port) and the devices sharing it."""

    key: str = Field(description="the link's name, e.g. tcp://10.0.0.5:502 or a port path")
    driver: str
    open: bool = Field(description="whether the connection is open now")
    devices: list[LinkDeviceOut]


class LinksOut(Model):
    links: list[LinkOut]
    traffic_watched: bool = Field(description="whether a traffic view is open (links capture)")


class PollOut(Model):
    """A device's readings right after an on-demand poll."""

    device: str
    status: Status
    readings: list[ReadingOut]


class WriteIn(Model):
    """The value to write, in the point's engineering units (after scale and offset)."""

    value: Value


class HealthOut(Model):
    status: Literal["ok"]


class BrokerOut(Model):
    """North over MQTT, in short: whether the broker is connected."""

    state: Literal["connecting", "connected", "disconnected", "stopped"]
    connected: bool
    broker: str
    prefix: str


class ReadyOut(Model):
    status: Literal["ready"]
    devices: dict[str, Status]
    mqtt: BrokerOut | None = None


class OutboxOut(Model):
    """The MQTT outbox: frames waiting for the broker's acknowledgement, and losses."""

    path: str
    depth: int
    bytes: int
    oldest_age_seconds: float
    dropped_frames: int
    dropped_readings: int
    write_errors: int


class NorthOut(Model):
    """North over MQTT in full (``enabled`` false, and nothing else, when it is off)."""

    enabled: bool
    broker: str | None = None
    format: Literal["json", "sparkplug"] | None = None
    prefix: str | None = None
    state: Literal["connecting", "connected", "disconnected", "stopped"] | None = None
    connected: bool | None = None
    connected_since: str | None = None
    last_error: str | None = None
    published: int | None = None
    acknowledged: int | None = None
    reconnects: int | None = None
    outbox: OutboxOut | None = None


class Problem(BaseModel):
    """An error document (RFC 9457 problem details), served as application/problem+json;
    a handler raises :class:`bridge.api.problems.ProblemError` to answer one."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


class ReloadOut(BaseModel):
    """What ``POST /api/v1/reload`` did, by device id."""

    reloaded: bool
    unchanged: list[str]
    changed: list[str] = Field(
        description="redefined: restarted, readings of unchanged points kept"
    )
    added: list[str]
    removed: list[str] = Field(description="gone: subscribers got a 'removed' status frame")
    restart_needed: list[str] = Field(description="server settings that differ: not reloaded")
