"""A Paraflow agent on device-bridge: three skills and a threshold watcher.

The actor ``device_bridge`` (Paranet SDK ``paranet-agent==3.0.1``) offers

- ``device_bridge/read_sensor(device, point)``: the latest reading of one point;
- ``device_bridge/latest_readings(device?)``: the latest readings of one device, or of all;
- ``device_bridge/write_setpoint(device, point, value)``: writes, and answers the read-back;

and, once the Paraflow runtime has called its initializer, watches the bridge's stream and
broadcasts ``device_bridge/threshold_alert`` when a value crosses a threshold of ``ALERTS``
(``raised`` once, ``cleared`` when it is back; only then can it be raised again), and
``device_bridge/readings_gap`` when readings may have been missed.

Environment: ``SERVICE_URL`` (the bridge's base URL), ``BRIDGE_TOKEN`` (a token of the
bridge; writes need its write token), ``ALERTS`` (e.g. ``boiler/temperature>63~1,
flow-a/flow<10``: ``>`` or ``<``, a limit, and ``~`` a hysteresis, default 0).

Run it with ``python agent.py`` beside a Paraflow runtime, or ``python agent.py --pipe``
to be driven over stdin/stdout (see ``pipe_client.py``). See README.md.

No ``from __future__ import annotations`` here: the SDK's ``@actor.skill`` compares the
annotation objects themselves (it looks for the ``Conversation`` class), and its type
mapper knows ``Optional[...]`` but not ``X | None``.
"""

import argparse
import asyncio
import functools
import inspect
import logging
import math
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from paranet_agent import actor, async_runner, connector
from paranet_agent.actor import BaseActor, Conversation
from paranet_agent.config import PIPE_MODE

# python-on-whales is how the SDK drives Docker; its errors say no engine is there
from python_on_whales.client_config import ClientNotFoundError
from python_on_whales.exceptions import DockerException

from bridge.client import BridgeClient, BridgeError, Gap, Reading

log = logging.getLogger("device_bridge_agent")

#: the actor's name on the Paranet, and the subject of its skills and broadcasts; it is
#: part of GraphQL names the SDK generates, so letters, digits and underscores only
ACTOR_NAME = "device_bridge"

OptStr = Optional[str]  # noqa: UP045 - the SDK's type mapper does not know `str | None`
OptInt = Optional[int]  # noqa: UP045


# ---------------------------------------------------------------------------------------
# Skill answers and broadcasts (their fields become the skills' output schemas)


@actor.type
class SensorReading:
    """One point's latest reading, as the bridge published it."""

    device: str
    point: str
    value: actor.JSON  # a number, a bool, a string, or null when there is no usable value
    unit: OptStr
    quality: str  # good, stale (the device stopped answering; last good value) or bad
    ts: OptStr  # when the value was read from the device, ISO 8601 UTC
    seq: OptInt
    error: OptStr  # why a reading is stale or bad


@actor.type
class SensorReadings:
    """Latest readings of several points."""

    readings: list[SensorReading]
    count: int


@actor.broadcast(subject=ACTOR_NAME, action="threshold_alert")
class ThresholdAlert:
    """A watched value crossed its threshold (``raised``), or went back (``cleared``)."""

    state: str
    device: str
    point: str
    condition: str
    threshold: float
    value: float
    unit: OptStr
    ts: OptStr
    message: str


@actor.broadcast(subject=ACTOR_NAME, action="readings_gap")
class ReadingsGap:
    """The stream could not be resumed without loss: readings may have been missed."""

    since: int  # the last seq the watcher had seen
    oldest: int  # the oldest seq the bridge could still replay
    boot_changed: bool  # the bridge restarted (its seqs started again)
    message: str


class SkillError(Exception):
    """A skill failed; the SDK reports ``str(error)`` to the requester."""


#: what each skill argument is, for the error that says it is missing or of the wrong type
ARGUMENTS = {
    "device": "a device id such as 'boiler'",
    "point": "a point id such as 'temperature'",
    "value": "the value to write: a number, or true/false for a coil or bit",
}
Skill = Callable[..., Awaitable[Any]]


def checked_arguments(skill: Skill) -> Skill:
    """The skill, answering a call with missing or wrongly typed arguments with a skill
    error that names them (the runtime passes on whatever the requester sent). The SDK
    still sees the skill's own signature, through ``functools.wraps``."""
    signature = inspect.signature(skill)
    name = skill.__name__

    @functools.wraps(skill)
    async def call(*args: Any, **kwargs: Any) -> Any:
        missing = [
            p for p, parameter in signature.parameters.items()
            if p not in ("self", "conv") and parameter.default is parameter.empty
            and kwargs.get(p) is None
        ]  # fmt: skip
        if missing:
            wanted = "; ".join(f"{p}: {ARGUMENTS.get(p, 'required')}" for p in missing)
            raise SkillError(f"{name} needs {', '.join(missing)} ({wanted})")
        for argument in ("device", "point"):
            given = kwargs.get(argument)
            if given is not None and not isinstance(given, str):
                raise SkillError(f"{name}: {argument} must be {ARGUMENTS[argument]}, not {given!r}")
        value = kwargs.get("value")
        if "value" in kwargs and not isinstance(value, int | float | bool | str):
            raise SkillError(f"{name}: value must be {ARGUMENTS['value']}, not {value!r}")
        return await skill(*args, **kwargs)

    return call


def to_answer(reading: Reading) -> SensorReading:
    """The skill answer for a reading of :mod:`bridge.client`."""
    ts = None if reading.ts is None else reading.ts.isoformat(timespec="milliseconds")
    ts = ts.replace("+00:00", "Z") if ts else None
    return SensorReading(
        device=reading.device,
        point=reading.point,
        value=reading.value,
        unit=reading.unit,
        quality=reading.quality,
        ts=ts,
        seq=reading.seq,
        error=reading.error,
    )


def explain(error: BridgeError, what: str, *, writing: bool = False) -> SkillError:
    """A skill error that says what failed, why, and what to do about it."""
    if error.status is None:  # BridgeUnavailable: no answer at all
        return SkillError(f"{what}: device-bridge did not answer: {error.detail}")
    text = f"{what}: {error.title or 'error'} (HTTP {error.status}): {error.detail}"
    if error.status == 401:
        text += "; set BRIDGE_TOKEN to a token of the bridge"
    elif error.status == 403 and writing:
        text += "; writes need BRIDGE_TOKEN set to the bridge's write token"
    return SkillError(text)


# ---------------------------------------------------------------------------------------
# Thresholds


RULE = re.compile(
    r"^\s*(?P<device>[a-z0-9_-]+)/(?P<point>[a-z0-9_-]+)\s*(?P<op>[<>])\s*"
    r"(?P<limit>[-+0-9.eE]+)\s*(?:~\s*(?P<hysteresis>[0-9.eE+]+))?\s*$"
)


@dataclass(frozen=True)
class AlertRule:
    """``device/point > limit`` (or ``<``), re-armed once back by ``hysteresis``."""

    device: str
    point: str
    op: str
    limit: float
    hysteresis: float = 0.0

    def __str__(self) -> str:
        return f"{self.device}/{self.point} {self.op} {self.limit:g}"

    def beyond(self, value: float) -> bool:
        """Whether ``value`` is past the threshold."""
        return value > self.limit if self.op == ">" else value < self.limit

    def back(self, value: float) -> bool:
        """Whether ``value`` is back on the safe side, hysteresis included."""
        if self.op == ">":
            return value <= self.limit - self.hysteresis
        return value >= self.limit + self.hysteresis


def parse_alerts(text: str | None) -> list[AlertRule]:
    """Rules from ``"boiler/temperature>63~1, flow-a/flow<10"``; empty text, no rules."""
    rules: list[AlertRule] = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        match = RULE.match(item)
        try:
            if match is None:
                raise ValueError
            limit = float(match["limit"])
            hysteresis = float(match["hysteresis"] or 0)
        except ValueError:
            raise ValueError(
                f"ALERTS: cannot read {item.strip()!r}: write device/point>limit or "
                "device/point<limit, optionally followed by ~hysteresis, e.g. "
                "boiler/temperature>63~1"
            ) from None
        if not math.isfinite(limit) or not math.isfinite(hysteresis) or hysteresis < 0:
            raise ValueError(f"ALERTS: {item.strip()!r}: limit and hysteresis must be finite")
        rules.append(AlertRule(match["device"], match["point"], match["op"], limit, hysteresis))
    return rules


class AlertTracker:
    """Alert state per rule: raised once when a value goes past its threshold.

    A rule is armed until a good reading is beyond its threshold: that raises the alert
    (a value already beyond when watching starts raises it too). It stays raised, whatever
    further readings say, until a good reading is back on the safe side by the rule's
    hysteresis: that clears the alert and re-arms the rule. Readings that are not good, or
    not numbers, change nothing.
    """

    def __init__(self, rules: Iterable[AlertRule]) -> None:
        self.rules = list(rules)
        self.raised: set[AlertRule] = set()

    def points(self) -> list[str]:
        """``device/point`` of every watched point, for the stream's filter."""
        return sorted({f"{rule.device}/{rule.point}" for rule in self.rules})

    def observe(self, reading: Reading) -> list[ThresholdAlert]:
        """The alerts ``reading`` raises or clears."""
        value = reading.value
        if not reading.good or isinstance(value, bool):
            return []
        if not isinstance(value, int | float) or not math.isfinite(value):
            return []
        alerts = []
        for rule in self.rules:
            if (rule.device, rule.point) != (reading.device, reading.point):
                continue
            if rule not in self.raised and rule.beyond(value):
                self.raised.add(rule)
                alerts.append(self._alert("raised", rule, reading, float(value)))
            elif rule in self.raised and rule.back(value):
                self.raised.discard(rule)
                alerts.append(self._alert("cleared", rule, reading, float(value)))
        return alerts

    @staticmethod
    def _alert(state: str, rule: AlertRule, reading: Reading, value: float) -> ThresholdAlert:
        unit = f" {reading.unit}" if reading.unit else ""
        name = f"{rule.device}/{rule.point}"
        side = "above" if rule.op == ">" else "below"
        if state == "raised":
            message = f"{name} is {value:g}{unit}, {side} its threshold of {rule.limit:g}{unit}"
        else:
            message = f"{name} is back to {value:g}{unit} (threshold {rule.limit:g}{unit})"
        return ThresholdAlert(
            state=state,
            device=rule.device,
            point=rule.point,
            condition=str(rule),
            threshold=rule.limit,
            value=value,
            unit=reading.unit,
            ts=to_answer(reading).ts,
            message=message,
        )


def gap_message(gap: Gap) -> ReadingsGap:
    """The broadcast for a gap in the stream."""
    if gap.boot_changed:
        lost = f"device-bridge restarted: readings published after seq {gap.since} were lost"
    else:
        lost = (
            f"readings published after seq {gap.since} and before seq {gap.oldest} were "
            "no longer kept by device-bridge and were missed"
        )
    return ReadingsGap(
        since=gap.since,
        oldest=gap.oldest,
        boot_changed=gap.boot_changed,
        message=f"{lost}; alerts are re-evaluated from the latest readings",
    )


# ---------------------------------------------------------------------------------------
# The actor


@actor.actor(name=ACTOR_NAME)
class DeviceBridgeAgent(BaseActor):
    """Readings, writes and threshold alerts of the devices behind one device-bridge."""

    def __init__(
        self,
        service_url: str | None = None,
        token: str | None = None,
        alerts: Sequence[AlertRule] | None = None,
    ) -> None:
        super().__init__()
        # None: BridgeClient reads SERVICE_URL and BRIDGE_TOKEN when a skill runs
        self.service_url = service_url
        self.token = token
        self.tracker = AlertTracker(
            alerts if alerts is not None else parse_alerts(os.environ.get("ALERTS"))
        )
        self.watcher: asyncio.Task[None] | None = None
        self.retry_delay = 1.0  # first wait after the stream failed; doubles to 30 s

    def client(self) -> BridgeClient:
        """A client of the bridge at ``SERVICE_URL`` (read now, so it may change)."""
        try:
            return BridgeClient(self.service_url, token=self.token)
        except ValueError as error:  # no SERVICE_URL, or not an http(s) URL
            raise SkillError(str(error)) from None

    # skills ----------------------------------------------------------------------------

    @actor.skill
    @checked_arguments
    async def read_sensor(self, device: str, point: str, conv: Conversation) -> SensorReading:
        """The latest reading of one point of a device: value, unit, quality and time."""
        try:
            async with self.client() as bridge:
                return to_answer(await bridge.latest(device, point))
        except BridgeError as error:
            raise explain(error, f"read {device}/{point}") from error

    @actor.skill
    @checked_arguments
    async def latest_readings(
        self,
        conv: Conversation,
        device: OptStr = None,
    ) -> SensorReadings:
        """The latest reading of every point of one device, or of every device."""
        what = f"latest readings of {device}" if device else "latest readings"
        try:
            async with self.client() as bridge:
                readings = await bridge.readings(devices=[device] if device else None)
        except BridgeError as error:
            raise explain(error, what) from error
        answers = [to_answer(reading) for reading in readings]
        return SensorReadings(readings=answers, count=len(answers))

    @actor.skill
    @checked_arguments
    async def write_setpoint(
        self, device: str, point: str, value: actor.JSON, conv: Conversation
    ) -> SensorReading:
        """Write a value (a number, or a bool for a coil) to a writable point.

        Answers the reading of the point read back from the device after the write.
        Needs BRIDGE_TOKEN set to the bridge's write token.
        """
        try:
            async with self.client() as bridge:
                return to_answer(await bridge.write(device, point, value))
        except BridgeError as error:
            raise explain(error, f"write {value!r} to {device}/{point}", writing=True) from error

    # the watcher -----------------------------------------------------------------------

    @actor.init
    def start_watcher(self) -> None:
        """Start watching the thresholds of ALERTS (called once by the Paraflow runtime)."""
        if not self.tracker.rules:
            log.info("ALERTS is empty: no thresholds to watch")
            return
        if self.watcher is None or self.watcher.done():
            self.watcher = asyncio.get_running_loop().create_task(self.watch())

    async def watch(self) -> None:
        """Subscribe to the watched points and broadcast alerts and gaps, forever.

        The client reconnects and resumes by itself; this loop only starts over (with a
        growing delay) when the subscription fails, e.g. for a wrong token.
        """
        delay = self.retry_delay
        log.info("watching %s", ", ".join(str(rule) for rule in self.tracker.rules))
        while True:
            try:
                async with (
                    self.client() as bridge,
                    bridge.subscribe(points=self.tracker.points()) as stream,
                ):
                    async for item in stream:
                        delay = self.retry_delay
                        for message in self.handle(item):
                            await self.broadcast(message)
            except Exception as error:  # a refused subscription, e.g. a wrong token
                log.error("watching the bridge failed: %s; again in %g s", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def handle(self, item: object) -> list[Any]:
        """The broadcasts one item of the stream calls for."""
        if isinstance(item, Gap):
            log.warning("stream gap: readings after seq %s may have been missed", item.since)
            return [gap_message(item)]
        if isinstance(item, Reading):
            return list(self.tracker.observe(item))
        return []

    async def broadcast(self, message: Any) -> None:
        """Send one broadcast; a failure is logged and does not stop the watcher."""
        log.info("broadcast %s", message)
        try:
            if PIPE_MODE:
                self.send_broadcast(message)  # queued to stdout by the SDK's pipe server
            else:
                # the SDK posts to the Paraflow runtime with blocking `requests`
                await asyncio.to_thread(self.send_broadcast, message)
        except Exception as error:
            log.error("broadcast %s failed: %s", type(message).__name__, error)


BROADCASTS = [ThresholdAlert, ReadingsGap]


# ---------------------------------------------------------------------------------------
# Launching


def no_runtime(error: Exception) -> str:
    """One line for a launch with neither PARAFLOW_HOST nor a Docker engine to start a
    local Paraflow node in."""
    detail = (getattr(error, "stderr", None) or str(error)).strip().splitlines()
    reason = detail[0] if detail else type(error).__name__
    return (
        "no Paraflow runtime: set PARAFLOW_HOST to a Paraflow node, start a Docker engine "
        f"for a local one, or run with --pipe ({reason})"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--pipe",
        action="store_true",
        help="talk to a parent process over stdin/stdout instead of HTTP (read by the SDK)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("CONNECTOR_PORT", "3000")),
        help="port of the SDK's connector (GraphQL) service (default 3000; the SDK uses "
        "3000 whenever PARAFLOW_HOST is set)",
    )
    parser.add_argument(
        "--project",
        default=os.environ.get("PARANET_PROJECT", "device-bridge-agent"),
        help="docker compose project of the local Paraflow containers (no PARAFLOW_HOST)",
    )
    return parser.parse_args(argv)


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        agent = DeviceBridgeAgent()
    except ValueError as error:
        print(f"agent.py: {error}", file=sys.stderr)
        return 2
    if not os.environ.get("SERVICE_URL"):
        log.warning("SERVICE_URL is not set: every skill will fail until it is")
    actor.register_actor(agent, broadcast=BROADCASTS)
    connector.start(args.port)  # nothing in pipe mode
    try:
        deployed = actor.deploy(args.project)  # None in pipe mode and with PARAFLOW_HOST
        if deployed is not None:
            await deployed  # launched the Paraflow containers of a local Paranet node
    except (DockerException, ClientNotFoundError, OSError) as error:
        print(f"agent.py: {no_runtime(error)}", file=sys.stderr)
        return 1
    await async_runner()  # serves until stdin closes (pipe) or the connector stops
    return 0


if __name__ == "__main__":
    # stdout carries the pipe protocol: logs go to stderr
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the connector's requests
    sys.exit(asyncio.run(main(sys.argv[1:])))
