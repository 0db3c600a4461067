"""Limits on HTTP clients: a connection cap, and quiet logging of their protocol errors.

aiohttp refuses a malformed request (a bad byte in the path, over-long lines, too many
headers, a bad ``Content-Length`` or chunking, an unknown method) before the app sees it,
and logs each with an ERROR and a full traceback: a remote client could flood the log.
:func:`client_error_logger` gives aiohttp a logger that turns those into one quiet line,
at most one per :data:`LOG_EVERY` seconds (the others are counted into the next line);
anything else still gets its traceback.

:class:`CappedSite` listens like :class:`aiohttp.web.TCPSite`, and answers a connection
beyond ``BRIDGE_MAX_CONNECTIONS`` with a 503 problem and closes it at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("bridge.http")

#: seconds between two log lines about misbehaving clients
LOG_EVERY = 10.0


class RateLimitedLog:
    """One line at most every ``every`` seconds; the lines skipped are counted into the next."""

    def __init__(self, logger: logging.Logger, every: float = LOG_EVERY) -> None:
        self.logger = logger
        self.every = every
        self._last = -float("inf")
        self.skipped = 0

    def info(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            self.skipped += 1
            return
        if self.skipped:
            message += f" ({self.skipped} more like it since the last line)"
            self.skipped = 0
        self._last = now
        self.logger.info(message, *args)


class _ClientErrorLogger(logging.Logger):
    """aiohttp's server logger, with clients' protocol errors as quiet one-line notes."""

    def __init__(self, quiet: RateLimitedLog) -> None:
        super().__init__("aiohttp.server")
        self.parent = logging.getLogger("aiohttp.server")
        self._quiet = quiet

    def handle(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            reason = str(error.message or error).splitlines()[0][:200]
            self._quiet.info("refused a malformed request from %s: %s", remote, reason)
            return
        super().handle(record)


def client_error_logger() -> logging.Logger:
    """The logger to give aiohttp's request handlers (``AppRunner(logger=...)``)."""
    return _ClientErrorLogger(RateLimitedLog(log))


def _too_many_connections() -> bytes:
    body = json.dumps(
        {
            "type": "https://device-bridge.dev/problems/service-unavailable",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "too many connections (BRIDGE_MAX_CONNECTIONS); try again later",
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Refuse(asyncio.Protocol):
    """A connection over the cap: answered with a 503 and closed, never parsed."""

    ANSWER = _too_many_connections()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.ANSWER)
        transport.close()


class CappedSite(web.TCPSite):
    """A TCP site that serves at most ``max_connections`` connections at once."""

    __slots__ = ("_max_connections", "_refused_log", "refused")

    def __init__(self, runner: web.BaseRunner, *args: Any, max_connections: int, **kw: Any):
        super().__init__(runner, *args, **kw)
        self._max_connections = max_connections
        self._refused_log = RateLimitedLog(log)
        self.refused = 0

    def _protocol_factory(self, server: web.Server) -> Callable[[], asyncio.BaseProtocol]:
        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) < self._max_connections:
                return server()
            self.refused += 1
            self._refused_log.info(
                "refused a connection: %d open, the most BRIDGE_MAX_CONNECTIONS allows",
                self._max_connections,
            )
            return _Refuse()

        return protocol

    async def start(self) -> None:
        # TCPSite.start, with the server behind the cap
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol_factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
