"""The example Paraflow agent (examples/paraflow) on the real Paranet SDK, without a runtime.

Two ways in, both through the SDK's own machinery:

- in process: the actor's skill methods as ``@actor.skill`` leaves them (a plain method that
  schedules the coroutine and answers through the ``Conversation``, as the SDK's resolvers
  call it), with a conversation that hands the answer or the error back to the test;
- ``agent.py --pipe`` in a subprocess, driven over stdin/stdout as a Paraflow runtime does
  (``pipe_client.PipeAgent``): metadata, async skills, the initializer, broadcasts.

Both against a live bridge polling the Modbus TCP simulator.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import BridgeFactory, eventually, tcp_device

from bridge.client import Gap, Reading
from simulators.modbus import ModbusSimulator

# Not a skip: without the SDK these tests must fail, so that CI installs it.
try:
    # paranet-agent ships neither type hints nor a py.typed marker
    from paranet_agent.actor import Conversation  # type: ignore[import-untyped]
except ImportError as error:  # pragma: no cover - a broken installation
    raise ImportError(
        "the Paranet SDK is missing: pip install -e '.[dev,examples]' "
        "(paranet-agent==3.0.1, strawberry-graphql<0.336)"
    ) from error

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "paraflow"
WRITE_TOKEN = "test-write-token"
#: seconds within which an answer or a broadcast must come
WITHIN = 10.0


def load(name: str, filename: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / filename)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


agent_module = load("paraflow_example_agent", "agent.py")
pipe_client = load("paraflow_example_pipe_client", "pipe_client.py")

Sim = tuple[ModbusSimulator, int]


def set_temperature(sim: ModbusSimulator, value: float) -> None:
    sim.units[1].set_value("holding", 0, "float32", value)


async def start_bridge(
    bridge_factory: BridgeFactory,
    simulator: Sim,
    monkeypatch: pytest.MonkeyPatch,
    *,
    token: str | None = WRITE_TOKEN,
    **server: Any,
) -> Any:
    """A bridge on the simulator (boiler, and a twin on the same unit) with the write token
    set; SERVICE_URL and BRIDGE_TOKEN point the agent at it. Returns once it is ready."""
    _, port = simulator
    devices = [tcp_device("boiler", port), tcp_device("twin", port)]
    running, session = await bridge_factory(devices, write_token=WRITE_TOKEN, **server)
    monkeypatch.setenv("SERVICE_URL", running.url)
    if token is None:
        monkeypatch.delenv("BRIDGE_TOKEN", raising=False)
    else:
        monkeypatch.setenv("BRIDGE_TOKEN", token)

    async def ready() -> bool:
        async with session.get("readyz") as response:
            return response.status == 200

    await eventually(ready, WITHIN)
    return running


# ---------------------------------------------------------------------------- in process


class SkillFailed(Exception):
    pass


class CapturedConversation(Conversation):  # type: ignore[misc]  # untyped SDK: Conversation is Any
    """A conversation whose answer comes back to the test instead of going to a runtime."""

    def __init__(self) -> None:
        super().__init__("device_bridge", "test", uuid.uuid4().hex)
        self.outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def send_response(self, data: Any) -> None:
        self.outcome.set_result(data)

    def background_error(self, error: str) -> None:
        self.outcome.set_exception(SkillFailed(error))


async def ask(agent: Any, skill: str, **inputs: Any) -> Any:
    """Request a skill through the SDK's wrapper of the skill method, as its resolvers do."""
    conv = CapturedConversation()
    # @actor.skill turned the coroutine into a method that schedules it and returns None
    assert getattr(agent, skill)(conv=conv, **inputs) is None
    return await asyncio.wait_for(conv.outcome, WITHIN)


async def test_read_sensor_answers_the_live_simulated_reading(
    simulator: Sim, bridge_factory: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_bridge(bridge_factory, simulator, monkeypatch)
    agent = agent_module.DeviceBridgeAgent()

    answer = await ask(agent, "read_sensor", device="boiler", point="temperature")
    assert isinstance(answer, agent_module.SensorReading)
    assert (answer.device, answer.point, answer.value) == ("boiler", "temperature", 21.5)
    assert (answer.unit, answer.quality, answer.error) == ("°C", "good", None)
    assert answer.ts is not None
    assert answer.ts.endswith("Z")

    # live: a new value in the simulator is what the skill answers next
    set_temperature(simulator[0], 48.25)

    async def updated() -> bool:
        reading = await ask(agent, "read_sensor", device="boiler", point="temperature")
        return bool(reading.value == 48.25)

    await eventually(updated, WITHIN, interval=0.05)


async def test_latest_readings_of_one_device_or_all(
    simulator: Sim, bridge_factory: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_bridge(bridge_factory, simulator, monkeypatch)
    agent = agent_module.DeviceBridgeAgent()

    boiler = await ask(agent, "latest_readings", device="boiler")
    values = {r.point: r.value for r in boiler.readings}
    assert boiler.count == 6 == len(boiler.readings)
    assert values == {
        "temperature": 21.5,
        "pressure": 1.52,
        "pump_on": True,
        "setpoint": 65.0,
        "alarm": True,
        "model": "BOILER-1",
    }
    assert {r.device for r in boiler.readings} == {"boiler"}

    everything = await ask(agent, "latest_readings")
    assert everything.count == 12
    assert {r.device for r in everything.readings} == {"boiler", "twin"}
    assert all(r.quality == "good" for r in everything.readings)


async def test_write_setpoint_writes_the_register_and_answers_the_read_back(
    simulator: Sim, bridge_factory: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, _ = simulator
    await start_bridge(bridge_factory, simulator, monkeypatch)
    agent = agent_module.DeviceBridgeAgent()

    answer = await ask(agent, "write_setpoint", device="boiler", point="setpoint", value=70.5)
    assert (answer.device, answer.point, answer.value, answer.quality) == (
        "boiler",
        "setpoint",
        70.5,
        "good",
    )
    assert sim.units[1].get_value("holding", 20, "float32", word_order="little") == 70.5

    # out of the point's min/max: refused by the bridge, said clearly, nothing written
    with pytest.raises(SkillFailed, match=r"write 95 to boiler/setpoint: .*\(HTTP 422\)"):
        await ask(agent, "write_setpoint", device="boiler", point="setpoint", value=95)
    assert sim.units[1].get_value("holding", 20, "float32", word_order="little") == 70.5


async def test_write_without_the_write_token_says_what_to_set(
    simulator: Sim, bridge_factory: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, _ = simulator
    await start_bridge(bridge_factory, simulator, monkeypatch, token=None)
    agent = agent_module.DeviceBridgeAgent()

    with pytest.raises(SkillFailed, match=r"\(HTTP 401\).*set BRIDGE_TOKEN"):
        await ask(agent, "write_setpoint", device="boiler", point="setpoint", value=70.5)
    assert sim.units[1].get_value("holding", 20, "float32", word_order="little") == 65.0


async def test_skills_on_unknown_devices_and_points_answer_a_clear_error(
    simulator: Sim, bridge_factory: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_bridge(bridge_factory, simulator, monkeypatch)
    agent = agent_module.DeviceBridgeAgent()

    with pytest.raises(SkillFailed) as failed:
        await ask(agent, "read_sensor", device="nope", point="temperature")
    message = str(failed.value)
    assert message.startswith("read nope/temperature: ")
    assert "HTTP 404" in message
    assert "boiler" in message  # names the devices there are

    with pytest.raises(SkillFailed, match=r"read boiler/nope: .*HTTP 404"):
        await ask(agent, "read_sensor", device="boiler", point="nope")
    with pytest.raises(SkillFailed, match=r"latest readings of nope: .*HTTP 404"):
        await ask(agent, "latest_readings", device="nope")


async def test_an_unreachable_bridge_or_no_service_url_is_said_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVICE_URL", "http://127.0.0.1:9")  # the discard port: refused
    agent = agent_module.DeviceBridgeAgent()
    with pytest.raises(SkillFailed, match="device-bridge did not answer"):
        await ask(agent, "read_sensor", device="boiler", point="temperature")

    monkeypatch.delenv("SERVICE_URL")
    with pytest.raises(SkillFailed, match="SERVICE_URL"):
        await ask(agent, "read_sensor", device="boiler", point="temperature")


async def test_missing_or_wrong_arguments_answer_a_clear_error() -> None:
    agent = agent_module.DeviceBridgeAgent()
    with pytest.raises(SkillFailed) as failed:
        await ask(agent, "read_sensor", device="boiler")
    assert str(failed.value) == "read_sensor needs point (point: a point id such as 'temperature')"
    with pytest.raises(SkillFailed, match=r"read_sensor: point must be a point id .*, not 5$"):
        await ask(agent, "read_sensor", device="boiler", point=5)
    with pytest.raises(SkillFailed, match=r"^write_setpoint needs value \(value: the value to"):
        await ask(agent, "write_setpoint", device="boiler", point="setpoint")
    with pytest.raises(SkillFailed, match=r"write_setpoint: value must be .*, not \[1\]$"):
        await ask(agent, "write_setpoint", device="boiler", point="setpoint", value=[1])


def test_no_runtime_is_said_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PARAFLOW_HOST"}
    # no Docker engine: a DOCKER_HOST where nothing listens
    env |= {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock", "SERVICE_URL": "http://127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "agent.py"), "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("agent.py:")]
    assert line.startswith("agent.py: no Paraflow runtime: set PARAFLOW_HOST")
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------- alerts


def reading(value: Any, quality: str = "good", point: str = "temperature") -> Reading:
    return Reading("boiler", point, value, "°C", quality, None, 1)


def test_alert_rules_are_read_from_text() -> None:
    rules = agent_module.parse_alerts(" boiler/temperature>63~1.5, flow-a/flow < 10 ,")
    assert [(r.device, r.point, r.op, r.limit, r.hysteresis) for r in rules] == [
        ("boiler", "temperature", ">", 63.0, 1.5),
        ("flow-a", "flow", "<", 10.0, 0.0),
    ]
    assert agent_module.parse_alerts("") == agent_module.parse_alerts(None) == []
    for bad in ("boiler/temperature=63", "temperature>63", "boiler/temperature>hot", "a/b>1~-1"):
        with pytest.raises(ValueError, match="ALERTS"):
            agent_module.parse_alerts(bad)


def test_an_alert_is_raised_once_and_re_armed_past_the_hysteresis() -> None:
    (rule,) = agent_module.parse_alerts("boiler/temperature>63~1")
    tracker = agent_module.AlertTracker([rule])

    def states(value: Any, quality: str = "good", point: str = "temperature") -> list[str]:
        return [a.state for a in tracker.observe(reading(value, quality, point))]

    assert states(60.0) == []
    assert states(63.0) == []  # at the threshold is not beyond it
    assert states(64.0) == ["raised"]
    assert states(70.0) == []  # once
    assert states(62.5) == []  # back under the threshold, not by the hysteresis
    assert states(63.5) == []
    assert states(None, "bad") == []
    assert states(10.0, "stale") == []  # a stale value says nothing of now
    assert states(10.0, point="pressure") == []
    assert states(62.0) == ["cleared"]
    assert states(61.0) == []
    assert states(65.0) == ["raised"]  # re-armed


def test_below_rules_and_values_already_beyond_at_start() -> None:
    tracker = agent_module.AlertTracker(agent_module.parse_alerts("boiler/flow<10"))
    (alert,) = tracker.observe(reading(4.5, point="flow"))
    assert (alert.state, alert.value, alert.threshold, alert.condition) == (
        "raised",
        4.5,
        10.0,
        "boiler/flow < 10",
    )
    assert "below its threshold of 10" in alert.message
    assert tracker.observe(reading(True, point="flow")) == []  # a bool is not a number
    assert [a.state for a in tracker.observe(reading(10, point="flow"))] == ["cleared"]


def test_a_gap_is_broadcast_not_hidden() -> None:
    agent = agent_module.DeviceBridgeAgent(alerts=[])
    (message,) = agent.handle(Gap(since=120, oldest=400, boot_changed=False))
    assert isinstance(message, agent_module.ReadingsGap)
    assert (message.since, message.oldest, message.boot_changed) == (120, 400, False)
    assert "after seq 120 and before seq 400" in message.message
    assert "missed" in message.message
    (restarted,) = agent.handle(Gap(since=120, oldest=1, boot_changed=True))
    assert "restarted" in restarted.message


# ---------------------------------------------------------------------------- pipe mode


async def test_pipe_mode_serves_the_skills_as_the_runtime_calls_them(
    simulator: Sim, bridge_factory: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, _ = simulator
    await start_bridge(bridge_factory, simulator, monkeypatch)
    monkeypatch.delenv("ALERTS", raising=False)
    async with await pipe_client.PipeAgent.start(env=dict(os.environ)) as agent:
        assert await agent.call("sdkVersion") == "3.0.1"
        assert agent.actor["name"] == "device_bridge"
        skills = {s["action"]: s for s in agent.actor["skills"]}
        assert set(skills) == {"read_sensor", "latest_readings", "write_setpoint"}
        assert {s["subject"] for s in skills.values()} == {"device_bridge"}
        outputs = [o["name"] for o in skills["read_sensor"]["outputs"]]
        assert outputs[:6] == ["device", "point", "value", "unit", "quality", "ts"]
        broadcasts = {b["action"] for b in agent.actor["broadcast"]}
        assert broadcasts == {"threshold_alert", "readings_gap"}

        answer = await agent.skill("read_sensor", device="boiler", point="temperature")
        assert (answer["value"], answer["unit"], answer["quality"]) == (21.5, "°C", "good")
        assert answer["ts"].endswith("Z")

        latest = await agent.skill("latest_readings", device="twin")
        assert latest["count"] == 6
        assert {r["device"] for r in latest["readings"]} == {"twin"}

        written = await agent.skill("write_setpoint", device="boiler", point="pump_on", value=False)
        assert (written["point"], written["value"]) == ("pump_on", False)
        assert sim.units[1].get_value("coil", 0, "bool") is False

        with pytest.raises(pipe_client.PipeError, match=r"read nope/temperature: .*HTTP 404"):
            await agent.skill("read_sensor", device="nope", point="temperature")


async def next_broadcast(agent: Any, action: str = "threshold_alert") -> dict[str, Any]:
    message: dict[str, Any] = await asyncio.wait_for(agent.broadcast(), WITHIN)
    assert message["action"] == action, message
    body: dict[str, Any] = message["body"]
    return body


async def test_alerts_are_broadcast_once_per_crossing_and_re_arm(
    simulator: Sim, bridge_factory: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, _ = simulator
    await start_bridge(bridge_factory, simulator, monkeypatch)
    monkeypatch.setenv("ALERTS", "boiler/temperature>63~1")

    async def temperature(value: float) -> None:
        """Set the simulator's temperature and wait until the bridge has published it."""
        set_temperature(sim, value)

        async def published() -> bool:
            async with agent_module.BridgeClient() as bridge:
                latest: Reading = await bridge.latest("boiler", "temperature")
            return latest.value == value

        await eventually(published, WITHIN)

    async with await pipe_client.PipeAgent.start(env=dict(os.environ)) as agent:
        await agent.init()  # what the runtime does on start: the watcher subscribes

        await temperature(70.0)
        raised = await next_broadcast(agent)
        assert (raised["state"], raised["device"], raised["point"]) == (
            "raised",
            "boiler",
            "temperature",
        )
        assert (raised["value"], raised["threshold"], raised["unit"]) == (70.0, 63.0, "°C")
        assert raised["condition"] == "boiler/temperature > 63"

        # still beyond, then back under the threshold but not by the hysteresis: silence,
        # so the next broadcast is the clearing one
        await temperature(71.0)
        await temperature(62.5)
        await temperature(21.5)
        cleared = await next_broadcast(agent)
        assert (cleared["state"], cleared["value"]) == ("cleared", 21.5)

        await temperature(66.0)
        again = await next_broadcast(agent)
        assert (again["state"], again["value"]) == ("raised", 66.0)


async def test_a_bridge_restart_is_broadcast_as_a_gap_and_watching_goes_on(
    simulator: Sim, bridge_factory: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, port = simulator
    running = await start_bridge(bridge_factory, simulator, monkeypatch)
    monkeypatch.setenv("ALERTS", "boiler/temperature>63")
    async with await pipe_client.PipeAgent.start(env=dict(os.environ)) as agent:
        await agent.init()
        set_temperature(sim, 70.0)
        assert (await next_broadcast(agent))["state"] == "raised"  # the watcher is subscribed

        # the bridge restarts on the same address: a new boot, the readings in between lost
        await running.close()
        bridge_port = urlsplit(running.url).port
        await bridge_factory([tcp_device("boiler", port)], port=bridge_port)
        gap = await next_broadcast(agent, "readings_gap")
        assert gap["boot_changed"] is True
        assert "restarted" in gap["message"]

        set_temperature(sim, 20.0)  # re-evaluated from the new bridge's readings
        cleared = await next_broadcast(agent)
        assert (cleared["state"], cleared["value"]) == ("cleared", 20.0)


# ---------------------------------------------------------------------------- packaging


def test_the_deployment_file_passes_service_url_from_the_deploying_shell() -> None:
    deployment = yaml.safe_load((EXAMPLE / "paranet.yaml").read_text(encoding="utf-8"))
    (actor,) = deployment["actors"]
    assert actor["name"] == "device_bridge"
    assert actor["env"]["SERVICE_URL"] == "${SERVICE_URL}"
    assert (EXAMPLE / actor["entrypoint"]).is_file()


def test_the_sdk_pins_agree_in_requirements_and_the_examples_extra() -> None:
    project = tomllib.loads((EXAMPLE.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    extra = set(project["project"]["optional-dependencies"]["examples"])
    assert extra == {"paranet-agent==3.0.1", "strawberry-graphql<0.336"}
    lines = (EXAMPLE / "requirements.txt").read_text(encoding="utf-8").splitlines()
    requirements = {line.split("#")[0].strip() for line in lines} - {""}
    assert extra <= requirements
