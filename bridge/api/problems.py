"""Errors as ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web

CONTENT_TYPE = "application/problem+json"

log = logging.getLogger(__name__)


class ProblemError(Exception):
    """An error answer: raise it from a handler and the middleware renders it."""

    def __init__(
        self,
        status: int,
        detail: str,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.headers = headers or {}
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.extra = extra


def problem_response(
    status: int, detail: str, title: str | None = None, **extra: Any
) -> web.Response:
    """A problem+json response."""
    title = title or HTTPStatus(status).phrase
    body = {
        "type": f"https://device-bridge.dev/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return web.Response(
        status=status, text=json.dumps(body, ensure_ascii=False), content_type=CONTENT_TYPE
    )


@web.middleware
async def problems_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn every error, ours or aiohttp's (404, 405, 413), into problem+json."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Exception as exc:
        return problem_for(request, exc)


def problem_for(request: web.Request, exc: Exception) -> web.Response:
    """The problem+json answer to an error raised while handling ``request``; called in
    the ``except`` that caught it. An ``HTTPException`` below 400 (a redirect) is raised
    again, for aiohttp to send as it is."""
    if isinstance(exc, ProblemError):
        response = problem_response(exc.status, exc.detail, exc.title, **exc.extra)
        response.headers.update(exc.headers)
        return response
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        detail = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        if exc.status == 404:
            detail = f"no route {request.method} {request.path}"
        elif exc.status == 405:
            detail = f"{request.method} is not allowed on {request.path}"
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        response = problem_response(exc.status, detail)
        response.headers.update(headers)
        return response
    # A bug: the client still gets a problem, and the traceback goes to the log.
    log.exception("%s %s failed", request.method, request.path)
    return problem_response(500, "internal error; the bridge's log has the details")
