"""The stream subscription: an async iterator that owns its connection and reconnect loop.

When the connection drops it reconnects with capped, jittered backoff
(:func:`bridge.backoff.backoff`) and asks for everything after the last ``seq`` it yielded
in the same ``boot``; :mod:`bridge.client.frames` turns each frame into events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final, Self

import aiohttp
from aiohttp import WSMsgType

from bridge.backoff import backoff
from bridge.client.closing import AsyncClosing
from bridge.client.endpoint import Endpoint, Params, filters
from bridge.client.errors import BridgeError, error_from_answer
from bridge.client.frames import FrameReader, ResumePoint
from bridge.client.models import Event

log = logging.getLogger("bridge.client")

#: seconds between WebSocket pings; a dead connection is noticed within 1.5 times this
HEARTBEAT: Final = 20.0
#: handshake answers that retrying cannot change: raised, not retried
PERMANENT: Final = frozenset({400, 401, 403, 404, 405, 410, 413, 414, 422})


class Subscription(AsyncClosing, AsyncIterator[Event]):
    """The iterator :meth:`BridgeClient.subscribe` returns.

    ``boot`` and ``last_seq`` are where it would resume from: save them to resume in a
    later run with ``subscribe(since=last_seq, boot=boot)``. ``connects`` counts the
    connections made so far. ``aclose()`` (or leaving ``async with``) closes the WebSocket.
    """

    def __init__(
        self, endpoint: Endpoint, state: ResumePoint, first_delay: float, max_delay: float
    ) -> None:
        # The generator must not refer to this object: then dropping the iterator (a
        # ``break`` out of ``async for``) frees the generator at once, and the event
        # loop's finalizer closes it and its WebSocket.
        self._state = state
        self._events = _reconnecting(endpoint, state, first_delay, max_delay)

    @property
    def boot(self) -> str | None:
        return self._state.boot

    @property
    def last_seq(self) -> int | None:
        return self._state.last_seq

    @property
    def connects(self) -> int:
        return self._state.connects

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()


async def _reconnecting(
    endpoint: Endpoint, state: ResumePoint, first_delay: float, max_delay: float
) -> AsyncGenerator[Event, None]:
    endpoint.session()  # a closed client raises here
    failures = 0
    while not endpoint.closed:
        ws = await _connect(endpoint, state)
        if ws is not None:
            reader = FrameReader(state)
            try:
                while True:
                    message = await ws.receive()
                    if message.type is not WSMsgType.TEXT:
                        break
                    for event in reader.events(message.data):
                        yield event
                    if reader.greeted:
                        failures = 0
            finally:
                endpoint.streams.discard(ws)
                await ws.close()
            if endpoint.closed:
                return
            log.info(
                "stream closed (code %s); resuming after seq %s", ws.close_code, state.last_seq
            )
        failures += 1
        await asyncio.sleep(backoff(failures, first_delay, max_delay))


async def _connect(
    endpoint: Endpoint, state: ResumePoint
) -> aiohttp.ClientWebSocketResponse | None:
    """A stream connection, or None after a failure worth retrying."""
    params = filters(state.devices, state.points)
    if state.last_seq is not None:
        params.append(("since", str(state.last_seq)))
        if state.boot is not None:
            params.append(("boot", state.boot))
    url = endpoint.url("api/v1/stream")
    try:
        async with asyncio.timeout(endpoint.timeout):
            ws = await endpoint.session().ws_connect(
                url, params=params, headers=endpoint.headers(), heartbeat=HEARTBEAT, max_msg_size=0
            )
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status in PERMANENT:
            raise await _refusal(endpoint, url, params, exc) from None
        log.info("stream %s refused (%s %s); retrying", url, exc.status, exc.message)
        return None
    except TimeoutError:
        log.info("stream %s: no answer within %s s; retrying", url, endpoint.timeout)
        return None
    except (aiohttp.ClientError, OSError) as exc:
        log.info("stream %s unreachable (%s); retrying", url, exc)
        return None
    endpoint.streams.add(ws)
    return ws


async def _refusal(
    endpoint: Endpoint, url: str, params: Params, exc: aiohttp.WSServerHandshakeError
) -> BridgeError:
    """The problem behind a refused handshake: the same request without the upgrade gets
    the same refusal, with its problem+json body."""
    try:
        async with endpoint.session().get(
            url,
            params=params,
            headers=endpoint.headers(),
            timeout=aiohttp.ClientTimeout(total=endpoint.timeout),
        ) as response:
            if response.status == exc.status:
                body = await response.read()
                return error_from_answer(response.status, response.reason, body, url)
    except (aiohttp.ClientError, OSError, TimeoutError):
        pass
    return error_from_answer(exc.status, exc.message, b"", f"GET {url} (WebSocket)")
