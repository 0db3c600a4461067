"""A 10 s broker outage under ~1000 readings/s: is every reading delivered, in order?

A Modbus simulator with 20 counters polled every 20 ms (1000 changed readings a second)
feeds a bridge publishing to a local Mosquitto; a paho-mqtt consumer (a session that
outlives the outage) records every readings frame. The broker is stopped for
``--outage`` seconds and started again; once the outbox is empty the script prints what
arrived: missing seqs, duplicates (by boot + seq), order, and how long the backlog took.
Needs ``mosquitto`` (apt-get install mosquitto).

    .venv/bin/python bench/north_outage.py [--outage 10] [--before 3] [--after 3]
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bridge.config import parse_config
from bridge.server import start_server
from simulators.modbus import ModbusDeviceState, ModbusSimulator
from simulators.modbus.tcp import ModbusTcpServer
from simulators.waveforms import Counter

COUNTERS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Mosquitto:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {directory}/\nmax_queued_messages 1000000\n"
            f"user {getpass.getuser()}\nlog_type error\n"
        )
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.01)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--before", type=float, default=3.0)
    parser.add_argument("--after", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        broker = Mosquitto(directory)
        broker.start()
        received: list[tuple[str, int, bool]] = []
        lock = threading.Lock()

        def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
            frame = json.loads(message.payload)
            with lock:
                received.extend(
                    (frame["boot"], r["seq"], bool(frame.get("historical")))
                    for r in frame.get("readings", ())
                )

        consumer = paho.Client(CallbackAPIVersion.VERSION2, "outage", clean_session=False)
        consumer.on_message = on_message
        consumer.on_connect = lambda c, *_: c.subscribe("outage/+/readings", qos=1)
        consumer.reconnect_delay_set(1, 2)
        consumer.connect("127.0.0.1", broker.port)
        consumer.loop_start()
        sim = ModbusSimulator({1: ModbusDeviceState("counters")})
        for i in range(COUNTERS):
            sim.attach(1, "holding", 2 * i, "uint32", Counter(increment=1000.0))
        points = [{"id": f"c{i}", "table": "holding", "address": 2 * i, "type": "uint32"}
                  for i in range(COUNTERS)]  # fmt: skip
        async with ModbusTcpServer(sim) as server:
            config = parse_config({
                "server": {"port": 0, "mqtt_url": f"mqtt://127.0.0.1:{broker.port}",
                           "mqtt_topic": "outage", "mqtt_outbox": str(directory / "o.sqlite")},
                "devices": [{"id": "counters", "driver": "modbus-tcp", "interval": 0.02,
                             "connection": {"host": "127.0.0.1", "port": server.port},
                             "points": points}],
            })  # fmt: skip
            running = await start_server(config)
            bridge, north = running.bridge, running.bridge.north
            assert north is not None
            await asyncio.sleep(args.before)
            start_seq = bridge.store.seq
            broker.stop()
            print(f"broker stopped at seq {start_seq}")
            await asyncio.sleep(args.outage)
            depth = north.outbox.depth
            broker.start()
            back = time.monotonic()
            print(f"broker started after {args.outage:.0f} s: {depth} frames in the outbox, "
                  f"{bridge.store.seq - start_seq} readings published meanwhile")  # fmt: skip
            while not north.connected or north.outbox.depth > 2:
                await asyncio.sleep(0.01)
            print(f"backlog sent in {time.monotonic() - back:.1f} s")
            await asyncio.sleep(args.after)
            await running.close()
            upto = bridge.store.seq
            boot = bridge.store.boot
        await asyncio.sleep(1.0)
        consumer.loop_stop()
        broker.stop()
    with lock:
        mine = [(s, h) for b, s, h in received if b == boot]
    seen: set[int] = set()
    first: list[int] = []
    for seq, _ in mine:
        if seq not in seen:
            seen.add(seq)
            first.append(seq)
    missing = set(range(1, upto + 1)) - seen
    print(f"{upto} readings published, {len(mine)} received, {len(seen)} distinct, "
          f"{len(mine) - len(seen)} duplicates (same boot + seq), {len(missing)} missing, "
          f"in order: {first == sorted(first)}, historical: {sum(h for _, h in mine)}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
