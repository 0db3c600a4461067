"""Bearer tokens and CORS (the Host and Origin checks are :mod:`bridge.api.hosts`).

``BRIDGE_READ_TOKEN`` and ``BRIDGE_WRITE_TOKEN`` (or their ``_FILE`` variants, for
container secrets) each hold one token, or several named ones as ``name:secret`` pairs
separated by commas; a lone token is named ``read`` or ``write``. The name is what the
audit log shows. A write token may also read. Tokens are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bridge.api.problems import ProblemError
from bridge.settings import Settings


@dataclass(frozen=True)
class Token:
    """A token the bridge accepts: its name (for the audit log) and what it may do."""

    name: str
    secret: bytes
    may_write: bool


#: the token a request came with; absent when it came with none
TOKEN = web.RequestKey("token", Token)


def parse_tokens(text: str | None, default_name: str, may_write: bool) -> list[Token]:
    """``secret`` or ``name:secret,name:secret`` as tokens."""
    if not text:
        return []
    tokens = []
    for part in text.split(","):
        part = part.strip()
        name, colon, secret = part.partition(":")
        if not colon:
            name, secret = default_name, part
        if secret:
            tokens.append(Token(name.strip() or default_name, secret.encode(), may_write))
    return tokens


class Tokens:
    """The tokens of one bridge and the rules that apply them."""

    def __init__(self, settings: Settings) -> None:
        self.readers = parse_tokens(settings.read_token, "read", may_write=False)
        self.writers = parse_tokens(settings.write_token, "write", may_write=True)

    @property
    def reads_guarded(self) -> bool:
        return bool(self.readers)

    @property
    def writes_enabled(self) -> bool:
        return bool(self.writers)

    def identify(self, authorization: str | None) -> Token | None:
        """The token in an ``Authorization: Bearer ...`` header, or None."""
        if not authorization:
            return None
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        try:
            secret = given.strip().encode()
        except UnicodeEncodeError:  # bytes that are not UTF-8 (kept as surrogates): no token
            return None
        found = None
        # Every token is compared, so the time taken does not tell which one was close.
        for token in (*self.readers, *self.writers):
            if hmac.compare_digest(secret, token.secret):
                found = token
        return found


#: the WebSocket subprotocol a browser names to carry its token (see websocket_bearer)
WS_PROTOCOL = "device-bridge"
_WS_TOKEN_PREFIX = "bearer."


def websocket_bearer(headers: Mapping[str, str]) -> str | None:
    """``Bearer <token>`` from a WebSocket handshake's subprotocols, or None.

    A browser cannot set headers on a WebSocket, and a token in the URL would end up in
    logs and history, so the page offers ``Sec-WebSocket-Protocol: device-bridge,
    bearer.<token as unpadded base64url>``; the server answers with ``device-bridge``.
    """
    if "Upgrade" not in headers:
        return None
    for offered in headers.get("Sec-WebSocket-Protocol", "").split(","):
        offered = offered.strip()
        if offered.startswith(_WS_TOKEN_PREFIX):
            encoded = offered[len(_WS_TOKEN_PREFIX) :]
            try:
                secret = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                return "Bearer " + secret.decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


def check_token(
    request: web.Request,
    tokens: Tokens,
    open_handlers: frozenset[Handler],
    write_handlers: frozenset[Handler] = frozenset(),
) -> None:
    """Reads need a token when read tokens are set; writes (PUT, and the routes of
    ``write_handlers``) always need a write token. The request's token, if any, is kept
    in it (``TOKEN``)."""
    # By route, not by path: ``/api/v1/devices/healthz`` is not ``/healthz``.
    handler = request.match_info.handler
    if handler in open_handlers or request.method == "OPTIONS":
        return
    writing = request.method == "PUT" or handler in write_handlers
    if not writing and not tokens.reads_guarded:
        return  # a read anyone may make: whatever token it carries is of no use
    token = tokens.identify(
        request.headers.get("Authorization") or websocket_bearer(request.headers)
    )
    if token is not None:
        request[TOKEN] = token
    if writing:
        if not tokens.writes_enabled:
            raise ProblemError(403, "writes are disabled: the bridge has no BRIDGE_WRITE_TOKEN")
        if token is None or not token.may_write:
            raise ProblemError(
                401,
                "writes need 'Authorization: Bearer <token>' with a write token",
                headers={"WWW-Authenticate": 'Bearer realm="write"'},
            )
    elif token is None:  # a read, and reads are guarded (else it returned above)
        raise ProblemError(
            401,
            "this route needs 'Authorization: Bearer <token>' with the read token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def cors_middleware(origins: list[str]) -> Middleware:
    """Answer browsers from the configured origins only; with none, no CORS at all."""
    allowed = frozenset(origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or origin.rstrip("/") not in allowed:
            return await handler(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        return response

    return cors
