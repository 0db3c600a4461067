"""A Python client for device-bridge, for agents (docs/agents.md).

Usage::

    from bridge.client import BridgeClient, Gap, Reading

    async with BridgeClient() as bridge:            # base URL from $SERVICE_URL
        r = await bridge.latest("boiler", "temperature")
        print(r.value, r.unit, r.quality, r.ts)
        await bridge.write("boiler", "setpoint", 65.0)
        async for event in bridge.subscribe(devices=["boiler"]):
            if isinstance(event, Gap):
                ...                                  # some readings were missed: resynchronise
            else:
                print(event.point, event.value)      # reconnects and resumes by itself

The base URL is ``$SERVICE_URL`` unless given, with or without a path
(``http://host:5000`` or ``http://host:5000/resource``); the token is ``$BRIDGE_TOKEN``
unless given, sent as ``Authorization: Bearer <token>``. Results are small frozen
dataclasses (:class:`Reading`, :class:`Device`, :class:`DeviceDetail`). Every failure is a
:class:`BridgeError` carrying the problem's ``status``, ``title``, ``detail`` and ``type``;
:class:`BridgeUnavailable` (``status`` None) means the bridge could not be reached at all.

**Subscribing.** :meth:`BridgeClient.subscribe` is an async iterator over the stream
(``/api/v1/stream``). It yields the latest reading of every matching point first (the
snapshot), then every new reading as the bridge publishes it, in ``seq`` order.

**Resuming.** When the connection drops (network, bridge restart, or the bridge closing it
with 1013 because the caller did not keep up) the iterator reconnects by itself, with
capped, jittered exponential backoff (0.1 s doubling to 10 s, ±20 % but never over the
cap; back to 0.1 s after a connection succeeds), and asks for everything after the last
``seq`` it yielded in the same ``boot``. As long as the bridge still keeps those readings
(``BRIDGE_HISTORY`` per point), the caller sees every reading exactly once, in order, as if
nothing had happened.

**Gaps.** When the bridge no longer holds what was missed (the history moved on, or the
bridge restarted and has a new ``boot``), the iterator yields a :class:`Gap` and then the
latest reading of every matching point again (a fresh snapshot). A gap is never hidden:
readings were lost, and anything the caller derived from the sequence of readings (counts,
edges, averages) should be treated as incomplete. The snapshot after it is the state to
resynchronise from; some of its readings may be ones the caller saw before.

Break out of the ``async for`` normally, or wrap the iterator in
:func:`contextlib.aclosing` (or ``async with bridge.subscribe() as stream``), so that its
WebSocket is closed at once; :meth:`BridgeClient.close` closes every open stream.

The package: :mod:`~bridge.client.models` (what calls return), :mod:`~bridge.client.errors`,
:mod:`~bridge.client.endpoint` (URL, token, session, one request),
:mod:`~bridge.client.rest` (:class:`BridgeClient`), :mod:`~bridge.client.subscription`
(the reconnecting stream) and :mod:`~bridge.client.frames` (one handler per frame type). It
imports nothing of the service but two dependency-free modules (:mod:`bridge.backoff`,
:mod:`bridge.states`), so an agent installs it without the drivers' dependencies.
"""

from bridge.client.errors import (
    BadRequest,
    BridgeError,
    BridgeUnavailable,
    Forbidden,
    InvalidValue,
    NotFound,
    Unauthorized,
)
from bridge.client.models import Device, DeviceDetail, Event, Gap, Reading, StatusChange, Value
from bridge.client.rest import BridgeClient
from bridge.client.subscription import HEARTBEAT, PERMANENT, Subscription

__all__ = [
    "HEARTBEAT",
    "PERMANENT",
    "BadRequest",
    "BridgeClient",
    "BridgeError",
    "BridgeUnavailable",
    "Device",
    "DeviceDetail",
    "Event",
    "Forbidden",
    "Gap",
    "InvalidValue",
    "NotFound",
    "Reading",
    "StatusChange",
    "Subscription",
    "Unauthorized",
    "Value",
]
