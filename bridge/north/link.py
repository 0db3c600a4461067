"""The connection to the broker: connect, drain the outbox in order, reconnect with backoff.

One task runs the connection. While connected, siblings in one TaskGroup drain the
outbox (``_drain``), publish retained state (``_state``) and read incoming messages
(``_receive``); any of them failing with an MQTT error ends the connection, and the
outbox's unacknowledged messages are sent again on the next one (at least once: a
consumer tells duplicates by ``boot`` and ``seq``). Messages that were in the outbox
when a connection came up are the backlog: sent first, at ``replay_rate`` messages a
second at most, marked historical; what is published meanwhile queues behind them. A
format's messages that must keep their place among the outbox's (Sparkplug's device
deaths and births) go through :meth:`Link.send_in_order`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from bridge.backoff import backoff
from bridge.north.outbox import Message, Outbox
from bridge.north.settings import MqttSettings

log = logging.getLogger(__name__)

#: seconds between connection attempts: doubling from the first, capped
RECONNECT_FIRST, RECONNECT_MAX = 0.2, 10.0
#: CONNACK codes that no retry will fix (bad credentials, not authorized)
HOPELESS = {4, 5, 134, 135}


class State(enum.Enum):
    """The connection's state, changed only by ``Link._set_state``."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


class Format(Protocol):
    """What a format does on the connection (see json_format and sparkplug)."""

    name: str

    def will(self) -> aiomqtt.Will: ...

    def subscriptions(self) -> list[str]: ...

    async def connected(self, link: Link) -> None: ...

    def finish(self, message: Message, historical: bool) -> bytes: ...

    def state_payload(self, item: Any) -> bytes: ...

    async def received(self, link: Link, message: aiomqtt.Message) -> None: ...

    async def stopping(self, link: Link) -> None: ...


class Link:
    """The bridge's connection to its broker and the counters about it."""

    def __init__(self, settings: MqttSettings, outbox: Outbox, fmt: Format) -> None:
        self.settings = settings
        self.outbox = outbox
        self.format = fmt
        self.state = State.CONNECTING
        self.client: aiomqtt.Client | None = None
        self.connected_since: float | None = None
        self.last_error: str | None = None
        self.published = 0
        self.acknowledged = 0
        self.reconnects = 0
        self.connects = 0
        self._retained: dict[str, tuple[Any, bool]] = {}  # topic -> (item, retain)
        self._retained_wake = asyncio.Event()
        #: (the outbox id it goes before, what makes it) of each message sent in order
        self._in_order: deque[tuple[int, Callable[[], tuple[str, bytes]]]] = deque()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: asyncio.TaskGroup | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt link")

    async def stop(self) -> None:
        """Say goodbye (the format's offline message), disconnect cleanly, stop."""
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=3.0)
            except TimeoutError:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._set_state(State.STOPPED)

    @property
    def connected(self) -> bool:
        return self.state is State.CONNECTED

    def _set_state(self, state: State, error: str | None = None) -> None:
        if state is self.state:
            return
        if state is State.CONNECTED:
            log.info("connected to %s", self.settings.url)
            self.connected_since = time.time()
        elif self.state is State.CONNECTED:
            if state is State.DISCONNECTED:
                log.warning("lost the broker %s: %s", self.settings.url, error)
            self.connected_since = None
        self.state = state

    async def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                await self._connection()
                failures = 0
            except MqttConnectError as exc:
                failures = 30 if getattr(exc.rc, "value", exc.rc) in HOPELESS else failures + 1
                self._failed(str(exc), failures)
            except Exception as exc:
                error = _first_leaf(exc)
                if not isinstance(error, aiomqtt.MqttError | OSError):
                    log.error("the MQTT connection failed", exc_info=error)
                failures += 1
                self._failed(str(error) or type(error).__name__, failures)
            if self._stop.is_set():
                break
            delay = backoff(failures, RECONNECT_FIRST, RECONNECT_MAX)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)

    def _failed(self, error: str, failures: int) -> None:
        was_connected = self.state is State.CONNECTED
        self._set_state(State.DISCONNECTED, error)  # says so once, if it was connected
        if not was_connected:
            # The first failure is worth a warning; its repeats would flood the log.
            level = logging.WARNING if self.last_error is None else logging.DEBUG
            log.log(level, "cannot reach the broker %s: %s", self.settings.url, error)
        self.last_error = error

    def _client(self) -> aiomqtt.Client:
        settings = self.settings
        client = aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password,
            will=self.format.will(),
            clean_session=True,
            timeout=10.0,
            keepalive=30,
            max_inflight_messages=settings.max_inflight,
            tls_context=ssl.create_default_context() if settings.tls else None,
        )
        # aiomqtt warns above this many publishes awaiting their PUBACK; the window is ours.
        client.pending_calls_threshold = settings.max_inflight + 100
        return client

    async def _connection(self) -> None:
        async with self._client() as client:
            self.client = client
            self.connects += 1
            if self.connects > 1:
                self.reconnects += 1
            try:
                async with asyncio.TaskGroup() as session:
                    self._session = session
                    self._in_order.clear()  # of a session gone: the births say it anew
                    for topic in self.format.subscriptions():
                        await client.subscribe(topic, qos=1)
                    # connected once writes can arrive: a write sent after it is not lost
                    self._set_state(State.CONNECTED)
                    self.last_error = None
                    await self.format.connected(self)
                    session.create_task(self._receive(client), name="mqtt receive")
                    session.create_task(self._drain(client, session), name="mqtt outbox")
                    session.create_task(self._state(client), name="mqtt retained")
                    await self._stop.wait()
                    await self.format.stopping(self)
                    raise _Stopped
            except* _Stopped:
                pass
            finally:
                self._session = None
                self.client = None

    # -- sending ----------------------------------------------------------------------

    def send(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        done: Callable[[], None] | None = None,
    ) -> asyncio.Task[None] | None:
        """Publish now, in call order, without waiting; ``done`` runs on the PUBACK.

        Returns the publishing task (None while not connected: the message is not sent).
        """
        client, session = self.client, self._session
        if client is None or session is None:
            return None
        self.published += 1
        return session.create_task(self._publish(client, topic, payload, qos, retain, done))

    async def _publish(
        self,
        client: aiomqtt.Client,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        done: Callable[[], None] | None,
    ) -> None:
        # Tasks start in the order they were created, so messages leave in call order.
        await client.publish(topic, payload, qos=qos, retain=retain, timeout=math.inf)
        if qos:
            self.acknowledged += 1
        if done is not None:
            done()

    def send_in_order(self, make: Callable[[], tuple[str, bytes]]) -> None:
        """Publish, at QoS 0, the (topic, payload) ``make`` returns after every message now
        in the outbox and before any appended later; ``make`` runs when it is sent. Not
        sent while not connected (a format's births on connecting state the present)."""
        if self._session is None:
            return
        self._in_order.append((self.outbox.next_id, make))
        self.outbox.wake()

    def _send_in_order(self, before: int) -> None:
        """Send what :meth:`send_in_order` queued to go before outbox message ``before``."""
        queued = self._in_order
        while queued and queued[0][0] <= before:
            topic, payload = queued.popleft()[1]()
            self.send(topic, payload, qos=0)

    def put_retained(self, topic: str, item: Any, retain: bool = True) -> None:
        """Publish the latest ``item`` on ``topic`` soon (only the newest if it changes again)."""
        self._retained[topic] = (item, retain)
        self._retained_wake.set()

    async def _state(self, client: aiomqtt.Client) -> None:
        while True:
            await self._retained_wake.wait()
            self._retained_wake.clear()
            items, self._retained = self._retained, {}
            pending = [
                self.send(topic, self.format.state_payload(item), retain=retain)
                for topic, (item, retain) in items.items()
            ]
            await asyncio.gather(*(p for p in pending if p is not None))

    async def _drain(self, client: aiomqtt.Client, session: asyncio.TaskGroup) -> None:
        outbox = self.outbox
        window = asyncio.Semaphore(self.settings.max_inflight)
        backlog_end = outbox.next_id - 1
        rate = self.settings.replay_rate
        burst = max(1.0, rate / 20)
        tokens, refilled = burst, time.monotonic()
        generation, cursor = outbox.generation, outbox.first_id
        while True:
            if generation != outbox.generation:
                generation, cursor = outbox.generation, outbox.first_id
            self._send_in_order(cursor)  # everything before the cursor is sent
            for message in await outbox.read(cursor, generation):
                historical = message.id <= backlog_end
                if historical:
                    # A token bucket: the backlog leaves at ``rate`` a second, in bursts.
                    while True:
                        now = time.monotonic()
                        tokens = min(burst, tokens + (now - refilled) * rate)
                        refilled = now
                        if tokens >= 1:
                            tokens -= 1
                            break
                        await asyncio.sleep((1 - tokens) / rate)
                await window.acquire()
                if generation != outbox.generation:
                    window.release()
                    break
                self._send_in_order(message.id)
                payload = self.format.finish(message, historical)
                task = self.send(
                    message.topic, payload, done=_acker(outbox, message.id, generation)
                )
                if task is None:
                    raise aiomqtt.MqttError("not connected")
                task.add_done_callback(lambda _t: window.release())
                cursor = message.id + 1

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            # Each message is handled in its own task: a slow write must not hold up others.
            if self._session is not None:
                self._session.create_task(self._handle(message))

    async def _handle(self, message: aiomqtt.Message) -> None:
        try:
            await self.format.received(self, message)
        except Exception:
            log.exception("handling a message on %s failed", message.topic)

    def status(self) -> dict[str, Any]:
        """The connection and the outbox, for the API, the debug page and /metrics."""
        outbox = self.outbox
        return {
            "broker": self.settings.url,
            "format": self.format.name,
            "prefix": self.settings.prefix,
            "state": self.state.value,
            "connected": self.connected,
            "connected_since": self.connected_since,
            "last_error": self.last_error,
            "published": self.published,
            "acknowledged": self.acknowledged,
            "reconnects": self.reconnects,
            "outbox": {
                "path": outbox.path,
                "depth": outbox.depth,
                "bytes": outbox.bytes,
                "oldest_age_seconds": outbox.oldest_age(),
                "dropped_frames": outbox.dropped_frames,
                "dropped_readings": outbox.dropped_readings,
                "write_errors": outbox.write_errors,
            },
        }


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class _Stopped(Exception):
    """Ends the connection's TaskGroup on a clean stop."""


def _acker(outbox: Outbox, id_: int, generation: int) -> Callable[[], None]:
    return lambda: outbox.acked(id_, generation)
