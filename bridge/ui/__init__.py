"""The monitoring and debugging page: our own HTML, CSS and JavaScript, served as they are.

The page is a shell that holds no data: everything it shows comes from the API (with the
token the person gives it, see docs/decisions.md), so the shell itself needs no token. It
is served with a Content-Security-Policy that allows only its own script and style files:
no inline script, no inline event handler, no ``eval``, no other site.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web
from aiohttp.typedefs import Handler

#: the page's files, by the name they are served under ``/ui/``
ASSETS = {
    "app.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _read(name: str) -> bytes:
    return files("bridge.ui").joinpath("static", name).read_bytes()


def page_handlers() -> tuple[Handler, Handler]:
    """The handlers of ``/`` (the page) and ``/ui/{name}`` (its files), read once."""
    index = _read("index.html")
    assets = {name: (_read(name), kind) for name, kind in ASSETS.items()}

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=index, content_type="text/html", charset="utf-8",
                            headers=HEADERS)  # fmt: skip

    async def asset(request: web.Request) -> web.Response:
        found = assets.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, kind = found
        return web.Response(body=body, content_type=kind, headers=HEADERS)

    return page, asset
