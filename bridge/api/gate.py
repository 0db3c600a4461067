"""The one middleware every API request passes: its host, its token, and errors as problems.

In this order: a foreign ``Host`` or ``Origin`` is refused
(:func:`bridge.api.hosts.check_host`), the token is checked
(:func:`bridge.api.auth.check_token`), the handler runs; a write refused on the way is
audited (:func:`bridge.api.writes.audit_refused`), and every error becomes problem+json
(:func:`bridge.api.problems.problem_for`). One layer, not one a concern: each middleware
is a coroutine more on every request. Four layers in one, with the host answers kept and
no token looked up where none is needed, took the latest-point route from 0.80 to 0.89 of
a bare aiohttp handler's requests per second (docs/performance.md, "The REST route").
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bridge.api.auth import Tokens, check_token
from bridge.api.hosts import HostPolicy, check_host
from bridge.api.problems import ProblemError, problem_for
from bridge.api.writes import audit_refused


def gate_middleware(
    policy: HostPolicy,
    tokens: Tokens,
    open_handlers: frozenset[Handler],
    write_handlers: frozenset[Handler],
) -> Middleware:
    """The middleware of :mod:`bridge.api.gate` (``open_handlers`` need no token,
    ``write_handlers`` a write token, as PUT does)."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            check_host(request, policy)
            try:
                check_token(request, tokens, open_handlers, write_handlers)
                return await handler(request)
            except (ProblemError, web.HTTPException) as exc:
                audit_refused(request, exc)
                raise
        except Exception as exc:
            return problem_for(request, exc)

    return gate
