"""North over MQTT in the JSON format, against a real Mosquitto broker."""

from __future__ import annotations

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
            await eventually(lambda: late.on("site/box-1/boiler/temperature"))
            assert json.loads(late.on("site/box-1/boiler/temperature")[0])["value"] == 30.5
            assert late.on("site/box-1/state") == [b"online"]
        finally:
            late.close()
        await running.close()
        assert consumer.on("site/box-1/state")[-1] == b"offline"
    finally:
        consumer.close()
