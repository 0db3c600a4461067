"""The least a stream can do: poll one farm device and write its changes to every client.

A peer for ``bench/latency.py`` that does the bridge's job for that benchmark and nothing
else, as cheaply as Python can: every ``--interval-ms`` (on a fixed grid, as the bridge's
poller keeps its phase) it reads ``--registers`` holding registers of the farm's device
with its own Modbus TCP framing, and writes a ``readings`` frame of the values that
changed, in the bridge's shape, to every WebSocket client (each first gets a ``snapshot``
frame of the latest values, as the bridge's stream begins) in one loop of ``send()`` calls
on plain non-blocking sockets: no transports, no queues, no filters, no history (the
frame's bytes are built as the bridge builds them, ``bridge.wsframe``). A client
whose socket will not take the whole frame is dropped. It answers ``GET
/api/v1/devices/d0`` with its poll count, as the benchmark reads the bridge's.

So its change → subscriber latency is what the kernel and the host leave of the target,
measured in the same run as the bridge's.

    python bench/bare_stream.py --farm-port 5950 --port 5994 --registers 10 --interval-ms 100
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import socket
import struct
import time

import orjson

from bridge.readings import iso_time
from bridge.wsframe import text_frame

#: RFC 6455: the server's accept key is the SHA-1 of the client's key and this
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
REQUEST = struct.Struct(">HHHBBHH")  # transaction, protocol, length, unit, function, address, count


class Stream:
    """The clients, the poll count and the last values: the whole state of this peer."""

    def __init__(self, registers: int) -> None:
        self.clients: list[socket.socket] = []
        self.polls = 0
        self.seq = 0
        self.last: list[int | None] = [None] * registers
        self.stamp = ""

    def reading(self, point: int, value: int | None) -> dict[str, object]:
        return {"device": "d0", "point": f"p{point}", "value": value, "unit": None,
                "quality": "good", "ts": self.stamp, "seq": self.seq}  # fmt: skip

    def publish(self, values: tuple[int, ...], ts: float) -> None:
        self.stamp = iso_time(ts)
        readings = []
        for i, value in enumerate(values):
            if self.last[i] != value:
                self.last[i] = value
                self.seq += 1
                readings.append(self.reading(i, value))
        if not readings:
            return
        data = text_frame(orjson.dumps({"type": "readings", "readings": readings}))
        size, gone = len(data), []
        for client in self.clients:
            try:
                if client.send(data) != size:
                    gone.append(client)
            except OSError:
                gone.append(client)
        for client in gone:
            self.clients.remove(client)
            client.close()

    def accept(self, client: socket.socket) -> None:
        """Answer one client's request (read whole: it is one small segment on loopback)."""
        client.settimeout(5)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            request += chunk
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (
                line.partition(b":") for line in request.split(b"\r\n")[1:] if line
            )
        }
        key = headers.get(b"sec-websocket-key")
        if key is None:
            body = orjson.dumps({"id": "d0", "stats": {"polls": self.polls}})
            client.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            client.close()
            return
        accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest())
        client.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        snapshot = [self.reading(i, value) for i, value in enumerate(self.last)]
        client.sendall(text_frame(orjson.dumps({"type": "snapshot", "readings": snapshot})))
        client.setblocking(False)
        self.clients.append(client)


async def poll_forever(stream: Stream, farm_port: int, registers: int, interval: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", farm_port)
    due = time.monotonic()
    transaction = 0
    while True:
        transaction = (transaction + 1) & 0xFFFF
        writer.write(REQUEST.pack(transaction, 0, 6, 1, 3, 0, registers))
        head = await reader.readexactly(9)
        values = struct.unpack(f">{registers}H", await reader.readexactly(head[8]))
        stream.polls += 1
        stream.publish(values, time.time())
        due += interval
        await asyncio.sleep(max(0.0, due - time.monotonic()))


async def serve(args: argparse.Namespace) -> None:
    stream = Stream(args.registers)
    listener = socket.create_server(("127.0.0.1", args.port), backlog=2048)
    listener.setblocking(False)
    loop = asyncio.get_running_loop()

    def accept_waiting() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except BlockingIOError:
                return
            try:
                stream.accept(client)
            except OSError:
                client.close()

    loop.add_reader(listener.fileno(), accept_waiting)
    await poll_forever(stream, args.farm_port, args.registers, args.interval_ms / 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farm-port", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--registers", type=int, default=10)
    parser.add_argument("--interval-ms", type=int, default=100)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))


if __name__ == "__main__":
    main()
