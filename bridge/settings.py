"""Service settings: ``BRIDGE_*`` environment variables over the device file's ``server:``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator
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
    history: int = Field(default=1000, ge=1, le=1_000_000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    subscriber_queue: int = Field(default=1000, ge=1, le=1_000_000)

    @field_validator("root_path")
    @classmethod
    def _root_path(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError("root_path must start with '/', like '/resource'")
        return value

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
