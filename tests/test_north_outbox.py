"""The outbox against a real broker: outages, a killed bridge, limits.

A stream of about 1000 readings/s (20 counters polled every 20 ms) flows while the broker
is stopped and started again; the consumer (paho-mqtt, in a session that outlives the
outage) must see every seq, in order, duplicates only as repeats of (boot, seq). The
outage here lasts 2 s, which fills the outbox exactly as 10 s would, only with fewer
frames; ``bench/north_outage.py`` runs the 10 s version.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import yaml
from conftest import BridgeFactory, eventually, tcp_device
from mqtt_broker import Broker, Consumer
from test_cli_lifecycle import Child, get

from simulators.modbus import ModbusDeviceState, ModbusSimulator
from simulators.modbus.tcp import ModbusTcpServer
from simulators.waveforms import Counter

COUNTERS = 20
POINTS = [
    {"id": f"c{i}", "table": "holding", "address": 2 * i, "type": "uint32"} for i in range(COUNTERS)
]


def counting_simulator() -> ModbusSimulator:
    """Unit 1 with COUNTERS uint32 counters that change every millisecond."""
    sim = ModbusSimulator({1: ModbusDeviceState("counters")})
    for i in range(COUNTERS):
        sim.attach(1, "holding", 2 * i, "uint32", Counter(increment=1000.0))
    return sim


def stream_device(port: int, device_id: str = "counters") -> dict[str, Any]:
    return tcp_device(device_id, port, points=POINTS, interval=0.02, timeout=0.5)


def delivered(consumer: Consumer, suffix: str = "/readings") -> list[tuple[str, int, bool]]:
    """(boot, seq, historical) of every reading received, in arrival order."""
    return [
        (frame["boot"], reading["seq"], bool(frame.get("historical")))
        for _, frame in consumer.ending(suffix)
        if frame["type"] == "readings"
        for reading in frame["readings"]
    ]


def check_in_order(received: list[tuple[str, int, bool]], boot: str, upto: int) -> None:
    """Every seq 1..upto of ``boot`` arrived; in order once duplicates are set aside."""
    seen: set[int] = set()
    first_time: list[int] = []
    for b, seq, _ in received:
        if b == boot and seq not in seen:
            seen.add(seq)
            first_time.append(seq)
    assert first_time == sorted(first_time), "readings arrived out of order"
    missing = set(range(1, upto + 1)) - seen
    assert not missing, f"{len(missing)} readings never arrived, e.g. {sorted(missing)[:5]}"


async def test_a_broker_outage_loses_nothing_and_keeps_order(
    broker: Broker, tmp_path: Path, bridge_factory: BridgeFactory
) -> None:
    consumer = Consumer(broker, "fleet/a/+/readings", name="outage-consumer")
    sim = counting_simulator()
    async with ModbusTcpServer(sim) as server:
        running, _ = await bridge_factory(
            [stream_device(server.port)],
            mqtt_url=broker.url,
            mqtt_topic="fleet/a",
            mqtt_outbox=str(tmp_path / "o.sqlite"),
            mqtt_replay_rate=200,
        )
        bridge = running.bridge
        north = bridge.north
        assert north is not None
        await eventually(lambda: len(delivered(consumer)) > 200)
        await asyncio.to_thread(broker.stop)
        await eventually(lambda: not north.connected)
        before = bridge.store.seq
        await eventually(lambda: bridge.store.seq > before + 1500, within=10)  # ~1.5-2 s
        assert north.outbox.depth > 50  # the outage's frames wait on disk
        await asyncio.to_thread(broker.start)
        await eventually(lambda: north.connected and north.outbox.depth < 5, within=20)
        upto = bridge.store.seq - COUNTERS * 5
        await eventually(
            lambda: {s for b, s, _ in delivered(consumer)} >= set(range(1, upto)), within=10
        )
        received = delivered(consumer)
        check_in_order(received, bridge.store.boot, upto)
        assert any(h for _, _, h in received), "the backlog is marked historical"
        # Live, then the outage's backlog (historical), then live again: never mixed. (The
        # very first poll may be historical too: it can beat the first connection.)
        runs = [flag for flag, _ in itertools.groupby(h for _, _, h in received)]
        assert runs in ([False, True, False], [True, False, True, False])
        status = north.describe()
        assert status["reconnects"] == 1
        assert status["outbox"]["dropped_frames"] == 0
    consumer.close()


def outboxed(path: Path) -> dict[str, list[int]]:
    """The seqs of the readings frames in an outbox file, by boot (read by the test itself)."""
    found: dict[str, list[int]] = {}
    with sqlite3.connect(path) as db:
        for (payload,) in db.execute("SELECT payload FROM outbox ORDER BY id"):
            frame = json.loads(payload)
            if frame["type"] == "readings":
                found.setdefault(frame["boot"], []).extend(r["seq"] for r in frame["readings"])
    return found


async def test_a_bridge_killed_during_an_outage_sends_its_outbox_after_restart(
    broker: Broker, tmp_path: Path
) -> None:
    consumer = Consumer(broker, "kill/+/readings", name="kill-consumer")
    sim = counting_simulator()
    outbox = tmp_path / "outbox.sqlite"
    async with ModbusTcpServer(sim) as server:
        device_file = tmp_path / "devices.yaml"
        device_file.write_text(yaml.safe_dump({
            "server": {"port": 0, "mqtt_url": broker.url, "mqtt_topic": "kill",
                       "mqtt_outbox": str(outbox)},
            "devices": [stream_device(server.port)],
        }))  # fmt: skip
        command = [sys.executable, "-m", "bridge", "run", "-c", str(device_file)]

        def base_url(child: Child) -> str:
            return child.expect(r"readings: (http://\S+)/api/v1/readings").group(1)

        def north(base: str) -> dict[str, Any]:
            return get(base + "/api/v1/north")[1]  # type: ignore[no-any-return]

        with Child(command, tmp_path) as first:
            base = await asyncio.to_thread(base_url, first)
            await eventually(lambda: len(delivered(consumer)) > 100, within=10)
            await asyncio.to_thread(broker.stop)
            # past 30 by a margin: the newest frames may still be on their way to the disk
            await eventually(lambda: north(base)["outbox"]["depth"] > 40, within=10)
            first.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.proc.wait, 5)
        kept = outboxed(outbox)
        assert len(kept) == 1
        ((old_boot, old_seqs),) = kept.items()
        assert len(old_seqs) > 30 * COUNTERS
        await asyncio.to_thread(broker.start)
        with Child(command, tmp_path) as second:
            base = await asyncio.to_thread(base_url, second)
            await eventually(
                lambda: {s for b, s, _ in delivered(consumer) if b == old_boot} >= set(old_seqs),
                within=20,
            )
            received = delivered(consumer)
            check_in_order(received, old_boot, max(old_seqs))
            # The old boot's readings come before the new boot's.
            boots = [b for b, _, _ in received]
            assert boots.index(old_boot) < len(boots) - boots[::-1].index(old_boot) - 1
            last_old = len(boots) - boots[::-1].index(old_boot) - 1
            assert all(b == old_boot for b in boots[: last_old + 1])
            second.stop(signal.SIGTERM)
    consumer.close()


async def test_an_outbox_over_its_limit_drops_the_oldest_and_announces_the_gap(
    broker: Broker, tmp_path: Path, bridge_factory: BridgeFactory
) -> None:
    consumer = Consumer(broker, "limits/+/readings", name="limits-consumer")
    await asyncio.to_thread(broker.stop)
    sim = counting_simulator()
    async with ModbusTcpServer(sim) as server:
        running, session = await bridge_factory(
            [stream_device(server.port)], mqtt_url=broker.url, mqtt_topic="limits",
            mqtt_outbox=str(tmp_path / "o.sqlite"), mqtt_outbox_max_bytes=20_000,
        )  # fmt: skip
        north = running.bridge.north
        assert north is not None
        await eventually(lambda: north.outbox.dropped_frames > 20, within=10)
        assert north.outbox.bytes < 20_000 + 1000
        metrics = await (await session.get("metrics")).text()
        assert "device_bridge_mqtt_dropped_frames_total" in metrics
        assert "device_bridge_mqtt_connected 0" in metrics
        await asyncio.to_thread(broker.start)

        def gap_then_readings() -> bool:
            kinds = [f["type"] for _, f in consumer.ending("/readings")]
            return "gap" in kinds and kinds.count("readings") > kinds.index("gap") + 5

        await eventually(gap_then_readings, within=10)
        frames = [f for _, f in consumer.ending("/readings")]
        gap = next(f for f in frames if f["type"] == "gap")
        assert gap["device"] == "counters"
        assert gap["since"] == 0  # everything from the start was dropped...
        assert gap["dropped_frames"] >= 20
        following = frames[frames.index(gap) + 1 :]
        # up to the next gap, if the outbox, still at its limit, had to drop again
        following = following[: next((i for i, f in enumerate(following) if f["type"] == "gap"),
                                     len(following))]  # fmt: skip
        after = [r["seq"] for f in following for r in f["readings"]]
        # ...up to `until`; the next frame carries on right after it, and nothing is missing.
        assert after[0] == gap["until"] + 1
        assert after == list(range(after[0], after[0] + len(after)))
    consumer.close()
