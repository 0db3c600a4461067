"""North over MQTT in the JSON format, against a real Mosquitto broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from conftest import BridgeFactory, eventually, tcp_device
from mqtt_broker import Broker, Consumer

from simulators.modbus import ModbusSimulator


def mqtt_server(broker: Broker, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "mqtt_url": broker.url,
        "mqtt_topic": "site/box-1",
        "mqtt_outbox": str(tmp_path / "outbox.sqlite"),
        **extra,
    }


def seqs(frames: list[Any]) -> list[int]:
    return [r["seq"] for f in frames if f["type"] == "readings" for r in f["readings"]]


async def test_readings_status_state_and_retained_latest(
    broker: Broker,
    tmp_path: Path,
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
) -> None:
    sim, port = simulator
    consumer = Consumer(broker, "site/#")
    try:
        running, _ = await bridge_factory(
            [tcp_device("boiler", port)], **mqtt_server(broker, tmp_path)
        )
        bridge = running.bridge
        await eventually(lambda: consumer.on("site/box-1/boiler/readings"))
        sim.units[1].set_value("holding", 0, "float32", 30.5)
        await eventually(
            lambda: any(
                r["point"] == "temperature" and r["value"] == 30.5
                for f in consumer.json_on("site/box-1/boiler/readings")
                for r in f["readings"]
            )
        )
        frames = consumer.json_on("site/box-1/boiler/readings")
        assert all(f["boot"] == bridge.store.boot and f["type"] == "readings" for f in frames)
        assert seqs(frames) == list(range(1, bridge.store.seq + 1))[: len(seqs(frames))]
        assert consumer.on("site/box-1/state")[0] == b"online"
        await eventually(
            lambda: (
                consumer.json_on("site/box-1/boiler/temperature")
                and consumer.json_on("site/box-1/boiler/temperature")[-1]["value"] == 30.5
            )
        )
        status = consumer.json_on("site/box-1/boiler/status")[-1]
        assert status["status"] == "online"
        # The outbox empties as the broker acknowledges.
        await eventually(lambda: bridge.north is not None and bridge.north.outbox.depth == 0)
        # A new subscriber gets the retained latest values and state.
        late = Consumer(broker, "site/box-1/boiler/temperature", "site/box-1/state")
        try:
            await eventually(
                lambda: late.on("site/box-1/boiler/temperature") and late.on("site/box-1/state")
            )
            assert json.loads(late.on("site/box-1/boiler/temperature")[0])["value"] == 30.5
            assert late.on("site/box-1/state") == [b"online"]
        finally:
            late.close()
        # A reload that removes the device clears its retained topics: as reload does,
        # its poller stops first, so no later poll publishes it again.
        assert bridge.north is not None
        await bridge.stop_pollers(list(bridge.pollers))
        bridge.north.devices_changed([], {"boiler": ["temperature"]})
        await eventually(lambda: consumer.on("site/box-1/boiler/temperature")[-1] == b"")
        await eventually(lambda: consumer.on("site/box-1/boiler/status")[-1] == b"")
        await running.close()
        # the broker acknowledged it to the bridge; the consumer's copy is on its way
        await eventually(lambda: consumer.on("site/box-1/state")[-1] == b"offline")
    finally:
        consumer.close()


async def test_two_bridges_on_one_broker_are_seen_apart_by_prefix(
    broker: Broker,
    tmp_path: Path,
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
) -> None:
    _, port = simulator
    consumer = Consumer(broker, "acme/+/+/readings")
    try:
        bridges = []
        for line in ("line-1", "line-2"):
            running, _ = await bridge_factory(
                [tcp_device("boiler", port)], mqtt_url=broker.url, mqtt_topic=f"acme/{line}",
                mqtt_outbox=str(tmp_path / f"{line}.sqlite"),
            )  # fmt: skip
            bridges.append(running.bridge)
        await eventually(
            lambda: (
                {t for t, _ in consumer.ending("/readings")}
                == {"acme/line-1/boiler/readings", "acme/line-2/boiler/readings"}
            )
        )
        for line, bridge in zip(("line-1", "line-2"), bridges, strict=True):
            frames = consumer.json_on(f"acme/{line}/boiler/readings")
            assert {f["boot"] for f in frames} == {bridge.store.boot}
    finally:
        consumer.close()


async def test_writes_over_mqtt_go_through_the_checked_audited_write_path(
    broker: Broker,
    tmp_path: Path,
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    caplog: Any,
) -> None:
    sim, port = simulator
    consumer = Consumer(broker, "site/box-1/boiler/+/set/result")
    try:
        running, session = await bridge_factory(
            [tcp_device("boiler", port)], **mqtt_server(broker, tmp_path, mqtt_writes=True)
        )
        await eventually(
            lambda: running.bridge.north is not None and running.bridge.north.connected
        )
        await eventually(lambda: running.bridge.devices["boiler"].status == "online")
        caplog.set_level("INFO", logger="bridge.audit")
        consumer.publish("site/box-1/boiler/setpoint/set", b'{"value": 70.5, "id": "a1"}')
        consumer.publish("site/box-1/boiler/setpoint/set", b'{"value": 700, "id": "a2"}')
        consumer.publish("site/box-1/boiler/model/set", b'{"value": "X", "id": "a3"}')
        consumer.publish("site/box-1/boiler/setpoint/set", b"not json")
        results = await eventually(
            lambda: (
                len(consumer.on("site/box-1/boiler/setpoint/set/result")) == 3
                and consumer.json_on("site/box-1/boiler/setpoint/set/result")
            )
        )
        by_id = {r["id"]: r for r in results}
        assert by_id["a1"]["status"] == 200
        assert by_id["a1"]["reading"]["value"] == 70.5
        assert sim.units[1].get_value("holding", 20, "float32", word_order="little") == 70.5
        assert by_id["a2"]["status"] == 422  # above max: checked before anything is sent
        assert by_id[None]["status"] == 400
        await eventually(lambda: consumer.on("site/box-1/boiler/model/set/result"))
        assert consumer.json_on("site/box-1/boiler/model/set/result")[0]["status"] == 403
        audit = [r.getMessage() for r in caplog.records if r.name == "bridge.audit"]
        assert any(
            "by=mqtt" in line and "value=70.5" in line and "result=ok" in line for line in audit
        )
        # Read over REST, the write is there too.
        body = await (await session.get("api/v1/devices/boiler/points/setpoint")).json()
        assert body["value"] == 70.5
    finally:
        consumer.close()


async def test_health_and_the_device_list_say_whether_the_broker_is_connected(
    broker: Broker,
    tmp_path: Path,
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
) -> None:
    sim, port = simulator
    running, session = await bridge_factory(
        [tcp_device("boiler", port)], **mqtt_server(broker, tmp_path)
    )
    north = running.bridge.north
    assert north is not None
    await eventually(lambda: north.connected and running.bridge.ready)
    ready = await (await session.get("readyz")).json()
    assert ready["mqtt"]["connected"] is True
    devices = await (await session.get("api/v1/devices")).json()
    assert devices["mqtt"] == {
        "state": "connected",
        "connected": True,
        "broker": broker.url,
        "prefix": "site/box-1",
    }
    await eventually(lambda: north.outbox.depth == 0)
    await asyncio.to_thread(broker.stop)
    await eventually(lambda: not north.connected)
    response = await session.get("readyz")
    assert response.status == 200  # a missing broker is reported, not a reason to restart
    assert (await response.json())["mqtt"]["state"] == "disconnected"
    status = await (await session.get("api/v1/north")).json()
    assert status["enabled"] is True
    assert status["state"] == "disconnected"
    assert status["last_error"]
    sim.units[1].set_value("holding", 0, "float32", 33.0)  # a new reading, for the outbox
    await eventually(lambda: north.outbox.depth > 0)
    metrics = await (await session.get("metrics")).text()
    assert "device_bridge_mqtt_connected 0" in metrics
    depth = next(
        line for line in metrics.splitlines() if line.startswith("device_bridge_mqtt_outbox_depth")
    )
    assert int(depth.split()[1]) > 0


async def test_without_mqtt_url_north_is_off(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    running, session = await bridge_factory([tcp_device("boiler", port)])
    assert running.bridge.north is None
    assert await (await session.get("api/v1/north")).json() == {
        "enabled": False,
        **dict.fromkeys(
            [
                "broker",
                "format",
                "prefix",
                "state",
                "connected",
                "connected_since",
                "last_error",
                "published",
                "acknowledged",
                "reconnects",
                "outbox",
            ]
        ),
    }
    assert "device_bridge_mqtt" not in await (await session.get("metrics")).text()
