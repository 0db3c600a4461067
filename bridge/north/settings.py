"""The MQTT connection as the ``BRIDGE_MQTT_*`` settings describe it."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bridge.settings import Settings


@dataclass(frozen=True)
class MqttSettings:
    """Where the broker is, who we are to it, and the outbox's limits."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    prefix: str
    format: str
    outbox: str
    outbox_max_bytes: int
    outbox_max_age: float
    replay_rate: float
    max_inflight: int
    writes: bool

    @property
    def url(self) -> str:
        """The broker's address without credentials (for logs and the status)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def default_prefix() -> str:
    """``device-bridge/<hostname>``: unique per box without configuration."""
    host = socket.gethostname().split(".")[0] or "bridge"
    return "device-bridge/" + "".join(c if c.isalnum() or c in "-_" else "-" for c in host)


def mqtt_settings(settings: Settings) -> MqttSettings | None:
    """The MQTT settings, or None when ``mqtt_url`` is not set (north is off).

    Credentials come from the URL (``mqtt://user:password@host``) or from ``mqtt_username``
    and ``mqtt_password_file``; the settings' validators have checked the URL already.
    Raises ValueError for a password file that cannot be read.
    """
    if settings.mqtt_url is None:
        return None
    parts = urlsplit(settings.mqtt_url)
    tls = parts.scheme == "mqtts"
    username = unquote(parts.username) if parts.username else settings.mqtt_username
    password = unquote(parts.password) if parts.password else None
    if password is None and settings.mqtt_password_file:
        path = Path(settings.mqtt_password_file)
        try:
            password = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"mqtt_password_file {path}: {exc.strerror}") from None
    prefix = settings.mqtt_topic or default_prefix()
    return MqttSettings(
        host=parts.hostname or "",
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=username,
        password=password,
        prefix=prefix,
        format=settings.mqtt_format,
        outbox=settings.mqtt_outbox,
        outbox_max_bytes=settings.mqtt_outbox_max_bytes,
        outbox_max_age=settings.mqtt_outbox_max_age,
        replay_rate=settings.mqtt_replay_rate,
        max_inflight=settings.mqtt_max_inflight,
        writes=settings.mqtt_writes,
    )
