"""Where the bridge is and how a request reaches it: base URL, token, timeout, the HTTP
session, the open WebSockets, and one JSON request with its errors mapped."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from bridge.client.errors import BridgeError, BridgeUnavailable, error_from_answer

Params = list[tuple[str, str]]


class Endpoint:
    """One bridge: ``base_url`` (``$SERVICE_URL`` unless given, with or without a path) and
    ``token`` (``$BRIDGE_TOKEN`` unless given). A ``session`` given is used and left open;
    otherwise one is made on first use and closed in :meth:`close`; it checks an https
    bridge's certificate against ``ca_file`` (``$BRIDGE_CA_FILE`` unless given) when there
    is one, else against the system's CAs."""

    def __init__(
        self,
        base_url: str | None,
        token: str | None,
        timeout: float,
        session: aiohttp.ClientSession | None,
        ca_file: str | None = None,
    ) -> None:
        base = base_url if base_url is not None else os.environ.get("SERVICE_URL")
        if not base:
            raise ValueError(
                "no bridge URL: pass BridgeClient('http://host:5000') "
                "or set SERVICE_URL (e.g. SERVICE_URL=http://127.0.0.1:5000)"
            )
        parts = urlsplit(base.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"bridge URL {base!r} must be http(s)://host[:port][/path], "
                "e.g. http://127.0.0.1:5000 or http://host:5000/resource"
            )
        #: the base URL, without a trailing slash: every path is joined under it
        self.base_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.token = token if token is not None else os.environ.get("BRIDGE_TOKEN") or None
        self.timeout = timeout
        self.streams: set[aiohttp.ClientWebSocketResponse] = set()
        self.closed = False
        self._session = session
        self._own_session = session is None
        #: the CA certificates an https bridge's certificate is checked against (PEM)
        self.ca_file = ca_file if ca_file is not None else os.environ.get("BRIDGE_CA_FILE") or None

    def url(self, path: str) -> str:
        """The absolute URL of an API path (``api/v1/devices``) under the base URL."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def session(self) -> aiohttp.ClientSession:
        """The HTTP session; raises BridgeError once the client is closed."""
        if self.closed:
            raise BridgeError("this BridgeClient is closed")
        if self._session is None:
            connector = None
            if self.ca_file is not None:
                trusted = ssl.create_default_context(cafile=self.ca_file)
                connector = aiohttp.TCPConnector(ssl=trusted)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout),
            )
        return self._session

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def close(self) -> None:
        """Close open streams (their iterators end) and the session if it is our own."""
        self.closed = True
        for ws in list(self.streams):
            await ws.close()
        self.streams.clear()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, method: str, path: str, *, params: Params | None = None, body: Any = None
    ) -> Any:
        """The JSON answer to one request; a BridgeError (by status) for an error answer,
        BridgeUnavailable when no answer came within the timeout."""
        url = self.url(path)
        where = f"{method} {url}"
        try:
            async with self.session().request(
                method,
                url,
                params=params,
                json=body,
                headers=self.headers(),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                data = await response.read()
                if response.status >= 400:
                    raise error_from_answer(response.status, response.reason, data, where)
                try:
                    return json.loads(data)
                except ValueError:
                    raise BridgeError(
                        f"{where} answered {response.content_type}, not JSON "
                        f"(is {self.base_url} a device-bridge?)",
                        status=response.status,
                        title="Unexpected answer",
                    ) from None
        except TimeoutError:
            raise BridgeUnavailable(f"{where}: no answer within {self.timeout} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise BridgeUnavailable(f"{where}: cannot reach the bridge: {exc}") from exc


def segment(name: str) -> str:
    """A device or point id as one path segment."""
    return quote(name, safe="")


def filters(devices: Iterable[str] | None, points: Iterable[str] | None) -> Params:
    """The ``device`` and ``point`` query parameters of a selection."""
    params: Params = [("device", d) for d in names(devices)]
    params.extend(("point", p) for p in names(points))
    return params


def names(given: Iterable[str] | None) -> Sequence[str]:
    """Names as a tuple; a lone string is one name, not its letters."""
    if given is None:
        return ()
    if isinstance(given, str):
        return (given,)
    return tuple(given)
