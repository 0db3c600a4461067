"""The client's errors: one class per problem status, built from problem+json answers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class BridgeError(Exception):
    """A request the bridge refused or could not serve, from its problem+json answer.

    ``status`` is the HTTP status (None when no answer came); ``title``, ``detail`` and
    ``type`` are the problem's; ``body`` is the whole problem document (some carry more,
    e.g. ``/readyz``'s ``devices``).
    """

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        title: str = "",
        type: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.body: dict[str, Any] = dict(body or {})
        super().__init__(detail)

    def __str__(self) -> str:
        if self.status is None:
            return self.detail
        return f"{self.status} {self.title}: {self.detail}" if self.title else self.detail


class BridgeUnavailable(BridgeError):
    """The bridge could not be reached, or did not answer in time (``status`` is None)."""


class BadRequest(BridgeError):
    """400: a bad query or body."""


class Unauthorized(BridgeError):
    """401: the token is missing or wrong (set ``BRIDGE_TOKEN`` or pass ``token=``)."""


class Forbidden(BridgeError):
    """403: the point is not writable, or writes are disabled on the bridge."""


class NotFound(BridgeError):
    """404: no such device or point (the detail names those there are)."""


class InvalidValue(BridgeError):
    """422: a value of the wrong type, or outside the point's ``min``/``max``."""


_BY_STATUS: dict[int, type[BridgeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    422: InvalidValue,
}


def error_from_answer(status: int, reason: str | None, body: bytes, where: str) -> BridgeError:
    """The error for an answer with an error status, from its problem+json body if any."""
    kind = _BY_STATUS.get(status, BridgeError)
    try:
        problem = json.loads(body)
    except ValueError:
        problem = None
    if isinstance(problem, dict) and isinstance(problem.get("detail"), str):
        return kind(
            problem["detail"],
            status=status,
            title=str(problem.get("title") or reason or ""),
            type=problem.get("type"),
            body=problem,
        )
    text = body.decode("utf-8", "replace").strip()
    detail = f"{where} answered {status} {reason or ''}".rstrip()
    detail += f": {text[:200]}" if text else ""
    detail += " (not a device-bridge problem answer: is the base URL right?)"
    return kind(detail, status=status, title=reason or "", body=None)
