"""Which ``Host`` a request may name, and which web page ``Origin`` may change things.

DNS rebinding: a page of ``evil.example`` whose name is made to resolve to 127.0.0.1 talks
to a bridge on loopback as if it were its own site, and the browser lets it read the
answers. Its requests still carry ``Host: evil.example``. So a request must name the bridge
by one of its own names: ``localhost`` (and ``*.localhost``), the machine's host name, the
listen addresses (the API's and the debug page's), the names in ``BRIDGE_ALLOWED_HOSTS``,
or any IP address (an address cannot be rebound: a page loaded from an address is of that
address's own origin).
``BRIDGE_ALLOWED_HOSTS=*`` switches the check off (behind a proxy that rewrites Host).

Cross-site requests: a page of another site may send a ``POST`` or open a WebSocket
without reading any answer. State-changing routes and the stream therefore refuse an
``Origin`` that is neither a ``BRIDGE_CORS_ORIGINS`` entry nor of one of the bridge's own
names (here an address counts only if it is loopback or the listen address). The check
never looks at the request's ``Host``, which a rebinding page controls. Clients that are
not browsers send no ``Origin`` and are not affected.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp import web

from bridge.api.problems import ProblemError
from bridge.settings import Settings

#: methods that change something: a foreign page may not send them
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: how many ``Host`` values' answers a policy keeps
HOSTS_KEPT = 256


def hostname(authority: str) -> str | None:
    """The host name of ``host[:port]`` (brackets of an IPv6 address dropped), lower case."""
    try:
        return urlsplit(f"//{authority}").hostname
    except ValueError:
        return None


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class HostPolicy:
    """The bridge's own names, from the settings and the machine."""

    def __init__(self, settings: Settings) -> None:
        listed = {h.strip().lower() for h in settings.allowed_hosts.split(",") if h.strip()}
        self.any_host = "*" in listed
        machine = {socket.gethostname().lower(), socket.getfqdn().lower()}
        listen = {settings.host.strip("[]").lower()}
        if settings.debug_port is not None:
            listen.add(settings.debug_host.strip("[]").lower())
        self.names = frozenset({"localhost", *listen, *machine, *listed} - {"*", ""})
        self.cors_origins = frozenset(settings.cors_origin_list)
        self._hosts: dict[str, bool] = {}

    def own(self, name: str) -> bool:
        """Whether ``name`` is one of the bridge's own names or loopback addresses."""
        if name in self.names or name.endswith(".localhost"):
            return True
        address = _address(name)
        return address is not None and address.is_loopback

    def host_allowed(self, host: str) -> bool:
        """Whether a request's ``Host`` header names this bridge."""
        if self.any_host:
            return True
        # Every request asks, nearly always with the same few values: the answers are
        # kept (a few hundred at most, so that made-up names cannot grow it).
        allowed = self._hosts.get(host)
        if allowed is None:
            name = hostname(host)
            allowed = name is not None and (self.own(name) or _address(name) is not None)
            if len(self._hosts) >= HOSTS_KEPT:
                self._hosts.clear()
            self._hosts[host] = allowed
        return allowed

    def origin_allowed(self, origin: str) -> bool:
        """Whether a page of ``origin`` may change things and open the stream."""
        if origin.rstrip("/") in self.cors_origins:
            return True
        try:
            name = urlsplit(origin).hostname
        except ValueError:
            return False
        return name is not None and self.own(name)


HOST_POLICY: web.AppKey[HostPolicy] = web.AppKey("host_policy", HostPolicy)


def check_host(request: web.Request, policy: HostPolicy) -> None:
    """403 for a foreign ``Host`` on any route, and for a foreign ``Origin`` on a change."""
    if not policy.host_allowed(request.host):
        raise ProblemError(
            403,
            f"Host {shorten(request.host)!r} is not a name of this bridge "
            "(add it to BRIDGE_ALLOWED_HOSTS)",
        )
    if request.method in STATE_CHANGING:
        check_origin(request, policy)


def check_origin(request: web.Request, policy: HostPolicy) -> None:
    """403 unless the request has no ``Origin`` or one the policy allows."""
    origin = request.headers.get("Origin")
    if origin is not None and not policy.origin_allowed(origin):
        raise ProblemError(
            403, f"a page from {shorten(origin)!r} may not do this (set BRIDGE_CORS_ORIGINS)"
        )


def shorten(text: str, most: int = 100) -> str:
    """``text``, cut to ``most`` characters: for quoting what a client sent."""
    return text if len(text) <= most else text[: most - 1] + "…"
