"""Logging set-up: plain text for people, one JSON object a line for log collectors."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from bridge.readings import iso_time

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call whose values are also JSON fields of the record (in JSON
    logs), e.g. the audit log's who, device, point, old, new and result."""
    return {"fields": values}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, the record's ``fields``
    (see :func:`fields`), and exc if any."""

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "ts": iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            body.update({key: value for key, value in extra.items() if key not in body})
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False, default=repr)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once, to standard error."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log is one line per request: too much for a sidecar polled every second.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def environment_logging() -> tuple[str, str]:
    """``BRIDGE_LOG_LEVEL`` and ``BRIDGE_LOG_FORMAT`` for commands without a device file
    (``demo``, ``simulate``); ValueError naming the variable when one is not valid."""
    level = os.environ.get("BRIDGE_LOG_LEVEL", "INFO").upper()
    fmt = os.environ.get("BRIDGE_LOG_FORMAT", "text").lower()
    if level not in LEVELS:
        raise ValueError(f"environment variable BRIDGE_LOG_LEVEL: {level!r} is not one of "
                         f"{', '.join(LEVELS)}")  # fmt: skip
    if fmt not in FORMATS:
        raise ValueError(f"environment variable BRIDGE_LOG_FORMAT: {fmt!r} is not one of "
                         f"{', '.join(FORMATS)}")  # fmt: skip
    return level, fmt
