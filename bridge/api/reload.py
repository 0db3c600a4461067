"""``POST /api/v1/reload``: re-read the device file into the running bridge."""

from __future__ import annotations

import logging

from aiohttp import web

from bridge import wire
from bridge.api.problems import ProblemError
from bridge.api.query import bridge_of
from bridge.api.schemas import ReloadOut
from bridge.config import ConfigError
from bridge.reload import reload

log = logging.getLogger(__name__)


async def reload_handler(request: web.Request) -> web.Response:
    """Re-read the device file; a file with errors changes nothing and is answered 422."""
    bridge = bridge_of(request)
    source = bridge.config.source
    if source is None:
        raise ProblemError(409, "this bridge was not started from a device file: nothing to reload")
    try:
        result = await reload(bridge, source)
    except ConfigError as exc:
        log.error("reload refused, the running configuration stays:\n%s", exc.render())
        raise ProblemError(
            422, f"{source} has errors: nothing was changed", errors=exc.render().splitlines()
        ) from None
    body = ReloadOut.model_validate(result.as_json()).model_dump(mode="json")
    return web.Response(body=wire.encode(body), content_type="application/json")
