"""Service settings: ``BRIDGE_*`` environment variables over the device file's ``server:``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class Settings(BaseSettings):
    """Everything about the service itself, as opposed to the devices it polls.

    Values given to the constructor (the device file's ``server:`` section) are overridden by
    the environment, so an operator can change a deployed file's port without editing it.
    """

    model_config = SettingsConfigDict(env_prefix="BRIDGE_", extra="forbid", frozen=True)

    config: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=0, le=65535)
    root_path: str = ""
    read_token: str | None = None
    write_token: str | None = None
    read_token_file: str | None = None
    write_token_file: str | None = None
    cors_origins: str = ""
    max_subscribers: int = Field(default=100, ge=1, le=100_000)
    history: int = Field(default=1000, ge=1, le=1_000_000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    subscriber_queue: int = Field(default=1000, ge=1, le=1_000_000)
    #: permessage-deflate on the stream: off, because subscribers are usually on the same
    #: host and deflating costs many times the encoding (docs/performance.md)
    stream_compress: bool = False
    #: uvloop's event loop when installed (bridge/event_loop.py), or asyncio's
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # Hostile clients (docs/reliability.md): names a request may give in Host, the most
    # connections at once, seconds to receive a request's headers (and, apart, its body).
    allowed_hosts: str = ""
    max_connections: int = Field(default=512, ge=1, le=100_000)
    request_timeout: float = Field(default=10.0, gt=0, le=3600, allow_inf_nan=False)
    # HTTPS and WSS when both are set (bridge/tls.py)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # North over MQTT (bridge/north): off unless mqtt_url is set.
    mqtt_url: str | None = None
    mqtt_username: str | None = None
    mqtt_password_file: str | None = None
    mqtt_topic: str | None = None
    mqtt_format: Literal["json", "sparkplug"] = "json"
    mqtt_outbox: str = "device-bridge-outbox.sqlite"
    mqtt_outbox_max_bytes: int = Field(default=256 * 1024 * 1024, ge=4096)
    mqtt_outbox_max_age: float = Field(default=7 * 24 * 3600.0, gt=0)
    mqtt_replay_rate: float = Field(default=500.0, gt=0)
    mqtt_max_inflight: int = Field(default=100, ge=1, le=65535)
    mqtt_writes: bool = False
    ui: bool = True
    debug_host: str = "127.0.0.1"
    debug_port: int | None = Field(default=None, ge=0, le=65535)

    @field_validator("root_path")
    @classmethod
    def _root_path(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError("root_path must start with '/', like '/resource'")
        return value

    @model_validator(mode="after")
    def _limits(self) -> Settings:
        if self.max_connections <= self.max_subscribers:
            raise ValueError(
                f"max_connections ({self.max_connections}) must be more than max_subscribers "
                f"({self.max_subscribers}): every stream client holds a connection"
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("give both tls_cert_file and tls_key_file, or neither")
        return self

    @model_validator(mode="after")
    def _token_files(self) -> Settings:
        for kind in ("read", "write"):
            path = getattr(self, f"{kind}_token_file")
            if path is None:
                continue
            if getattr(self, f"{kind}_token") is not None:
                raise ValueError(f"give {kind}_token or {kind}_token_file, not both")
            try:
                secret = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"{kind}_token_file {path}: {exc.strerror}") from None
            if not secret:
                raise ValueError(f"{kind}_token_file {path} is empty")
            object.__setattr__(self, f"{kind}_token", secret)
        return self

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("mqtt_url must be mqtt://host:port or mqtts://host:port")
        try:
            parts.port  # noqa: B018 (raises ValueError for a port out of range)
        except ValueError:
            raise ValueError("mqtt_url has a bad port") from None
        if not parts.hostname:
            raise ValueError("mqtt_url names no host")
        return value.strip()

    @field_validator("mqtt_topic")
    @classmethod
    def _mqtt_topic(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().strip("/")
        if not value or any(c in value for c in "+#\x00") or "//" in value:
            raise ValueError("mqtt_topic must be a topic prefix without wildcards, like site/box-1")
        return value

    @model_validator(mode="after")
    def _mqtt(self) -> Settings:
        if self.mqtt_password_file is not None:
            try:
                Path(self.mqtt_password_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(
                    f"mqtt_password_file {self.mqtt_password_file}: {exc.strerror}"
                ) from None
        if (
            self.mqtt_format == "sparkplug"
            and self.mqtt_topic is not None
            and self.mqtt_topic.count("/") != 1
        ):
            raise ValueError("with mqtt_format sparkplug, mqtt_topic is <group>/<edge node>")
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        """The origins allowed to call from a browser (comma-separated in the setting)."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file: the first source listed takes precedence.
        return env_settings, init_settings
