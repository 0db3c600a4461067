"""Sparkplug B against a real broker, checked against the specification's rules.

The consumer is paho-mqtt; payloads are decoded with the specification's schema
(bridge/north/sparkplug_b.proto). Rules checked: NBIRTH first on every connection with
``seq`` 0 and a ``bdSeq`` metric, a DBIRTH per device before any of its DDATA, every
DBIRTH with every point, ``seq`` + 1 (mod 256) from one message to the next, NDEATH (the
Will, and on a clean stop) with the ``bdSeq`` of the NBIRTH it ends, a rebirth on NCMD
``Node Control/Rebirth``, ``is_historical`` on what the outbox replays, a DDEATH when a
device stops answering and no DDATA of it until its next DBIRTH.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from conftest import BOILER_POINTS, BridgeFactory, eventually, tcp_device
from mqtt_broker import Broker, Consumer
from test_cli_lifecycle import Child, get

from bridge.config import parse_config
from bridge.north.sparkplug import REBIRTH, SparkplugFormat
from bridge.north.sparkplug_b_pb2 import Payload
from bridge.readings import PublishedReading
from bridge.service import Bridge
from bridge.states import Quality
from simulators.modbus import ModbusSimulator

NODE = "spBv1.0/plant/+/box-1/#"


def decoded(consumer: Consumer) -> list[tuple[str, str, Payload]]:
    """(message type, device or "", payload) of every Sparkplug message, in order."""
    found = []
    for topic, payload, _ in list(consumer.messages):
        parts = topic.split("/")
        if parts[0] == "spBv1.0" and parts[2] != "NCMD":
            found.append(
                (parts[2], parts[4] if len(parts) > 4 else "", Payload.FromString(payload))
            )
    return found


def metric(payload: Payload, name: str) -> Payload.Metric:
    return next(m for m in payload.metrics if m.name == name)


def check_sequence(messages: list[tuple[str, str, Payload]]) -> None:
    """The specification's ordering rules over one consumer's view."""
    born: set[str] = set()
    node_born = False
    previous: int | None = None
    for kind, device, payload in messages:
        if kind == "NDEATH":
            node_born, born, previous = False, set(), None
            continue
        if kind == "NBIRTH":
            assert payload.seq == 0
            node_born, born = True, set()
        else:
            assert node_born, f"{kind} before NBIRTH"
            assert payload.HasField("seq")
            assert payload.seq == (previous + 1) % 256, (kind, payload.seq, previous)  # type: ignore[operator]
        if kind == "DBIRTH":
            born.add(device)
        if kind == "DDEATH":
            born.discard(device)
        if kind == "DDATA":
            assert device in born, f"DDATA of {device} before its DBIRTH or after its DDEATH"
        previous = payload.seq


def sparkplug_server(broker: Broker, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"mqtt_url": broker.url, "mqtt_format": "sparkplug", "mqtt_topic": "plant/box-1",
            "mqtt_outbox": str(tmp_path / "spb.sqlite"), **extra}  # fmt: skip


def test_the_generated_module_is_up_to_date(tmp_path: Path) -> None:
    here = Path(__file__).parent.parent / "bridge" / "north"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{here}", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", str(here / "sparkplug_b.proto")],
        check=True,
    )  # fmt: skip
    for name in ("sparkplug_b_pb2.py", "sparkplug_b_pb2.pyi"):
        assert (tmp_path / name).read_text() == (here / name).read_text(), (
            f"run make sparkplug: {name}"
        )


def test_seq_wraps_from_255_to_0_and_replay_marks_metrics_historical() -> None:
    config = parse_config({"devices": [tcp_device("boiler", 1)]})
    fmt = SparkplugFormat("plant/box-1", Bridge(config), writes=False)
    fmt.seq = 250
    reading = PublishedReading("boiler", "temperature", 21.5, "°C", Quality.GOOD, 1.0, 1)
    message = fmt.readings_message(None, "boiler", [reading])  # type: ignore[arg-type]
    assert message is not None  # a live device's readings make a message
    topic, body = message
    assert topic == "spBv1.0/plant/DDATA/box-1/boiler"
    assert not Payload.FromString(body).HasField("seq")  # the outbox keeps it without
    from bridge.north.outbox import Message

    seqs = [Payload.FromString(fmt.finish(Message(i, topic, body), False)).seq for i in range(10)]
    assert seqs == [250, 251, 252, 253, 254, 255, 0, 1, 2, 3]
    replayed = Payload.FromString(fmt.finish(Message(11, topic, body), True))
    assert metric(replayed, "temperature").is_historical
    assert metric(replayed, "temperature").double_value == 21.5


async def test_births_data_rebirth_and_death_follow_the_specification(
    broker: Broker,
    tmp_path: Path,
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
) -> None:
    sim, port = simulator
    consumer = Consumer(broker, NODE)
    try:
        running, _ = await bridge_factory(
            [tcp_device("boiler", port)], **sparkplug_server(broker, tmp_path)
        )
        await eventually(lambda: any(k == "DBIRTH" for k, _, _ in decoded(consumer)))
        sim.units[1].set_value("holding", 0, "float32", 30.5)
        await eventually(
            lambda: any(
                k == "DDATA" and metric(p, "temperature").double_value == 30.5
                for k, _, p in decoded(consumer)
                if k == "DDATA" and any(m.name == "temperature" for m in p.metrics)
            )
        )
        messages = decoded(consumer)
        nbirth = messages[0][2]
        assert messages[0][0] == "NBIRTH"
        bd_seq = metric(nbirth, "bdSeq").long_value
        assert metric(nbirth, REBIRTH).boolean_value is False
        dbirth = next(p for k, _, p in messages if k == "DBIRTH")
        assert {m.name for m in dbirth.metrics} == {p["id"] for p in BOILER_POINTS}
        assert all(m.datatype and m.timestamp for m in dbirth.metrics)
        # Rebirth on request: NBIRTH (seq 0, same bdSeq) and DBIRTH again.
        command = Payload()
        command.metrics.add(name=REBIRTH, datatype=11, boolean_value=True)
        consumer.publish("spBv1.0/plant/NCMD/box-1", command.SerializeToString())
        await eventually(lambda: sum(k == "NBIRTH" for k, _, _ in decoded(consumer)) == 2)
        await eventually(lambda: sum(k == "DBIRTH" for k, _, _ in decoded(consumer)) == 2)
        reborn = [p for k, _, p in decoded(consumer) if k == "NBIRTH"][1]
        assert metric(reborn, "bdSeq").long_value == bd_seq
        # A reload that removes a device and adds it back: DDEATH, then DBIRTH.
        north = running.bridge.north
        assert north is not None
        north.devices_changed(["boiler"], {"boiler": [p["id"] for p in BOILER_POINTS]})
        await eventually(lambda: sum(k == "DBIRTH" for k, _, _ in decoded(consumer)) == 3)
        assert [k for k, _, _ in decoded(consumer)][-2:] == ["DDEATH", "DBIRTH"]
        await running.close()
        await eventually(lambda: decoded(consumer)[-1][0] == "NDEATH")
        messages = decoded(consumer)
        assert metric(messages[-1][2], "bdSeq").long_value == bd_seq
        check_sequence(messages)
    finally:
        consumer.close()


async def test_the_will_is_ndeath_with_the_births_bdseq_and_replay_is_historical(
    broker: Broker, tmp_path: Path, simulator: tuple[ModbusSimulator, int]
) -> None:
    sim, port = simulator
    consumer = Consumer(broker, NODE, name="spb-consumer")
    device_file = tmp_path / "devices.yaml"
    device_file.write_text(yaml.safe_dump({
        "server": {"port": 0, **sparkplug_server(broker, tmp_path)},
        "devices": [tcp_device("boiler", port)],
    }))  # fmt: skip
    command = [sys.executable, "-m", "bridge", "run", "-c", str(device_file)]
    try:
        with Child(command, tmp_path) as child:
            await asyncio.to_thread(child.expect, r"readings: ")
            await eventually(lambda: any(k == "DBIRTH" for k, _, _ in decoded(consumer)), within=10)
            child.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(child.proc.wait, 5)
        await eventually(lambda: any(k == "NDEATH" for k, _, _ in decoded(consumer)))
        messages = decoded(consumer)
        nbirth = next(p for k, _, p in messages if k == "NBIRTH")
        ndeath = next(p for k, _, p in messages if k == "NDEATH")
        assert metric(ndeath, "bdSeq").long_value == metric(nbirth, "bdSeq").long_value
        # An outage: what is read meanwhile is replayed after the births, historical.
        with Child(command, tmp_path) as child:
            found = await asyncio.to_thread(child.expect, r"readings: (http://\S+)/api/v1/readings")
            temperature = found.group(1) + "/api/v1/devices/boiler/points/temperature"

            def temperature_reads(expected: float) -> bool:
                return bool(get(temperature)[1]["value"] == expected)

            await eventually(
                lambda: sum(k == "DBIRTH" for k, _, _ in decoded(consumer)) == 2, within=10
            )
            await asyncio.to_thread(broker.stop)
            for value in (40.0, 41.0, 42.0):
                sim.units[1].set_value("holding", 0, "float32", value)
                await eventually(partial(temperature_reads, value))
            await asyncio.to_thread(broker.start)
            await eventually(
                lambda: sum(k == "NBIRTH" for k, _, _ in decoded(consumer)) == 3, within=15
            )
            await eventually(
                lambda: any(
                    k == "DDATA"
                    and any(m.name == "temperature" and m.double_value == 42.0 for m in p.metrics)
                    for k, _, p in decoded(consumer)
                ),
                within=10,
            )
            child.stop(signal.SIGTERM)
        messages = decoded(consumer)
        third = [i for i, (k, _, _) in enumerate(messages) if k == "NBIRTH"][2]
        replayed = [
            m
            for k, _, p in messages[third:]
            if k == "DDATA"
            for m in p.metrics
            if m.name == "temperature"
        ]
        assert [m.double_value for m in replayed if m.is_historical][:3] == [40.0, 41.0, 42.0]
        births = [metric(p, "bdSeq").long_value for k, _, p in messages if k == "NBIRTH"]
        assert births[2] == births[1] + 1  # a new connection, a new bdSeq
        check_sequence(messages)
    finally:
        consumer.close()


async def test_a_device_that_stops_answering_dies_and_is_born_again_when_it_answers(
    broker: Broker,
    tmp_path: Path,
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
) -> None:
    sim, port = simulator
    consumer = Consumer(broker, NODE, name="spb-device-death")

    def kinds() -> list[str]:
        return [k for k, _, _ in decoded(consumer)]

    def since(start: int) -> list[tuple[str, str, Payload]]:
        return decoded(consumer)[start:]

    try:
        running, _ = await bridge_factory(
            [tcp_device("boiler", port)], **sparkplug_server(broker, tmp_path)
        )
        await eventually(lambda: "DDATA" in kinds())
        # it stops answering: its metrics go stale, then its DDEATH, then nothing of it
        sim.silent = True
        await eventually(lambda: "DDEATH" in kinds())
        died = kinds().index("DDEATH")
        await eventually(lambda: running.bridge.devices["boiler"].poll_failures >= 3)
        assert [k for k, _, _ in since(died)] == ["DDEATH"]
        # it answers again: a DBIRTH with the value it has now, before any DDATA
        sim.units[1].set_value("holding", 0, "float32", 61.5)
        sim.silent = False
        await eventually(lambda: "DBIRTH" in kinds()[died:])
        reborn = next(p for k, _, p in since(died) if k == "DBIRTH")
        assert metric(reborn, "temperature").double_value == 61.5
        assert not metric(reborn, "temperature").properties.keys  # good: no quality
        await eventually(lambda: "DDATA" in kinds()[died:])
        # offline while the broker is away: born with the others, dead after the backlog
        sim.silent = True
        await eventually(lambda: kinds().count("DDEATH") == 2)
        await asyncio.to_thread(broker.stop)
        sim.units[1].set_value("holding", 0, "float32", 62.5)
        await asyncio.to_thread(broker.start)
        await eventually(lambda: kinds().count("NBIRTH") == 2, within=15)
        await eventually(lambda: kinds().count("DDEATH") == 3)
        connected = len(kinds()) - 1 - kinds()[::-1].index("NBIRTH")
        assert [k for k, _, _ in since(connected)] == ["NBIRTH", "DBIRTH", "DDEATH"]
        sim.silent = False
        await eventually(lambda: kinds()[-1] == "DDATA")
        assert kinds()[connected:][3:5] == ["DBIRTH", "DDATA"]
        check_sequence(decoded(consumer))
    finally:
        consumer.close()
