"""Logging set-up: plain text for people, one JSON object a line for log collectors."""

from __future__ import annotations

import json
import logging
import sys

from bridge.readings import iso_time


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message (and exc if any)."""

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "ts": iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


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
