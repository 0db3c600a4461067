"""A real Mosquitto broker for tests, and a consumer that is not the bridge's own code.

The broker is Debian's ``mosquitto`` run as a subprocess on a free loopback port with a
generated configuration; it can be stopped and started again on the same port, as an
outage. The consumer is a paho-mqtt client on its own network thread.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from test_cli_lifecycle import free_port


class Broker:
    """One mosquitto process on 127.0.0.1:``port``; ``stop`` and ``start`` for outages."""

    def __init__(self, directory: Path) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.exe = exe
        self.port = free_port()
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            # Persistence, so that a consumer's session and its queued messages survive
            # the broker being stopped and started again (an outage).
            "persistence true\n"
            f"persistence_location {directory}/\n"
            "max_queued_messages 100000\n"
            # Sparkplug births are QoS 0: keep them for a consumer that is reconnecting too.
            "queue_qos0_messages true\n"
            "log_type error\n"
            # As root, mosquitto would become the user "mosquitto", who cannot write here.
            f"user {getpass.getuser()}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.exe, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.01)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=5)
            self.process = None


class Consumer:
    """A paho-mqtt subscriber recording every message it receives, in arrival order."""

    def __init__(self, broker: Broker, *topics: str, name: str | None = None) -> None:
        """Subscribe to ``topics``; with a ``name``, in a session that outlives outages."""
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=name or "", clean_session=name is None
        )
        # paho annotates the delays int, but only adds, doubles and sleeps on them: fractions
        # of a second work, and keep reconnects after a broker outage quick
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)  # type: ignore[arg-type]
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.topics = topics or ("#",)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            raise RuntimeError("the consumer could not subscribe")

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, _client: paho.Client, _userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[bytes]:
        """Payloads received on one topic, in order."""
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def json_on(self, topic: str) -> list[Any]:
        return [json.loads(p) for p in self.on(topic)]

    def ending(self, suffix: str) -> list[tuple[str, Any]]:
        """(topic, decoded JSON) of messages on topics ending with ``suffix``, in order."""
        with self._lock:
            found = [(t, p) for t, p, _ in self.messages if t.endswith(suffix)]
        return [(t, json.loads(p)) for t, p in found]

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
