"""WebSocket subscribers for the benchmarks, in a process of their own.

Opens ``--clients`` connections to a stream URL (the bridge's or Node-RED's: both send
``{"type": "readings", "readings": [...]}`` frames), counts the readings received between
``--start`` and ``--stop`` (Unix times) and prints one JSON line: readings, frames and,
with ``--clock``, the latency of every frame that carries the farm's clock registers
(device ``d0``, points ``p0``-``p2``: the time the values changed, in ms).

With ``--clock`` the clients are as cheap as can be while frames arrive, so that their
own work is not counted as the bridge's delay (:func:`clock_clients`): one plain epoll
loop per process reads the WebSocket frames off the sockets and keeps each payload with
two times: when it reached the socket (the kernel's receive timestamp) and when the
client read it. The JSON is parsed once the run is over. A frame's latency is the time
it reached the subscriber's socket minus the time the farm changed the values it
carries: the wait for the bridge's next poll, the poll, the bridge's fan-out and the
kernel's delivery, but not how soon the client process, on cores it shares with the
bridge, got round to reading (that is ``read_latencies``). Without ``--clock`` the
clients are aiohttp's and parse as they go.

    python bench/subscribers.py ws://127.0.0.1:5990/api/v1/stream --clients 250 \
        --start T0 --stop T1 [--clock]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import select
import socket
import struct
import time
from datetime import datetime
from urllib.parse import urlsplit

import aiohttp
import orjson


class Counts:
    def __init__(self) -> None:
        self.readings = 0
        self.frames = 0
        #: change → the frame reaching the subscriber's socket, and → its being read
        self.latencies: list[float] = []
        self.read_latencies: list[float] = []
        #: the poll's end (the readings' ``ts``, to the ms) → the frame reaching the socket
        self.after_poll: list[float] = []
        #: (the change, the frame reaching the socket): a frame's arrivals, over its clients
        self.arrivals: list[tuple[float, float]] = []


#: Linux: the kernel stamps each received segment with the time it reached the socket
SO_TIMESTAMPNS = 35
TIMESTAMP_SPACE = socket.CMSG_SPACE(16)  # a struct timespec
#: the text frames of one connection, each with the times it arrived and was read
Arrivals = list[tuple[float, float, bytes]]


class ClockConnection:
    """One WebSocket connection read by :func:`clock_clients`: it only frames what arrives.

    Each text frame is kept with two times: when the segment that completed it reached
    the socket (the kernel's receive timestamp, ``SO_TIMESTAMPNS``) and when the client
    process read it (``time.time()`` after the read returned).
    """

    def __init__(self, url: str) -> None:
        split = urlsplit(url)
        host, port = split.hostname or "127.0.0.1", split.port or 80
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock = socket.create_connection((host, port))
        self.sock.sendall(
            (
                f"GET {split.path or '/'}{'?' + split.query if split.query else ''} HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed the connection during the handshake")
            answer += chunk
        head, _, self.buffer = answer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.decode(errors="replace"))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setblocking(False)
        self.frames: Arrivals = []
        self.open = True
        if self.buffer:
            self.feed(time.time(), time.time(), b"")

    def read(self) -> None:
        """Take what the socket holds (it is ready) and frame it."""
        try:
            data, ancillary, _, _ = self.sock.recvmsg(65536, TIMESTAMP_SPACE)
        except BlockingIOError:
            return
        read = time.time()
        if not data:
            self.open = False
            return
        arrived = read
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = struct.unpack("qq", value)
                arrived = seconds + nanoseconds / 1e9
        self.feed(arrived, read, data)

    def feed(self, arrived: float, read: float, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        at, size = 0, len(buffer)
        while size - at >= 2:
            opcode, length = buffer[at] & 0x0F, buffer[at + 1] & 0x7F
            head = 2
            if length == 126:
                if size - at < 4:
                    break
                (length,) = struct.unpack_from("!H", buffer, at + 2)
                head = 4
            elif length == 127:
                if size - at < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, at + 2)
                head = 10
            if size - at < head + length:
                break
            payload = buffer[at + head : at + head + length]
            at += head + length
            if opcode == 0x1:
                self.frames.append((arrived, read, payload))
            elif opcode == 0x9:  # ping: a pong with the same payload, masked (zero mask)
                self.send(0xA, payload)
            elif opcode == 0x8:
                self.open = False
        self.buffer = buffer[at:]

    def send(self, opcode: int, payload: bytes) -> None:
        assert len(payload) < 126  # control frames only
        self.sock.setblocking(True)
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0" * 4 + payload)
        self.sock.setblocking(False)

    def close(self) -> None:
        if self.open:
            with contextlib.suppress(OSError):
                self.send(0x8, struct.pack("!H", 1000))
        self.sock.close()


def clock_clients(url: str, count: int, stop: float, read_every: float) -> list[Arrivals]:
    """``count`` connections read until ``stop`` by one plain epoll loop: their frames.

    No event loop between the socket and the read: a ready socket costs one ``epoll``
    entry, one ``recvmsg`` and the framing. After each round of reads the loop sleeps
    ``read_every`` seconds, so that one wake-up reads many sockets: woken for every
    socket, 250 clients cost more than the bridge's whole fan-out, on the cores they
    share with it. What the latency counts is when a frame reached the socket, so the
    sleep moves only the read times.
    """
    connections = {c.sock.fileno(): c for c in (ClockConnection(url) for _ in range(count))}
    poller = select.epoll()
    for fd in connections:
        poller.register(fd, select.EPOLLIN)
    while (left := stop - time.time()) > 0:
        for fd, _ in poller.poll(min(left, 1.0)):
            connection = connections[fd]
            connection.read()
            if not connection.open:
                poller.unregister(fd)
        time.sleep(read_every)
    poller.close()
    for connection in connections.values():
        connection.close()
    return [c.frames for c in connections.values()]


def count_clock(frames: Arrivals, start: float, stop: float, counts: Counts) -> None:
    """Parse one connection's frames after the run: readings in the window and latencies."""
    clock_parts: dict[str, int] = {}  # the latest of p0-p2: only changes are sent
    for arrived, read, payload in frames:
        if arrived >= stop:
            break
        frame = orjson.loads(payload)
        if frame.get("type") not in ("readings", "snapshot"):
            continue
        readings = frame["readings"]
        changed = False
        for r in readings:
            if r["device"] == "d0" and r["point"] in ("p0", "p1", "p2"):
                clock_parts[r["point"]] = r["value"]
                changed = True
        if frame["type"] != "readings" or arrived < start:
            continue
        counts.frames += 1
        counts.readings += len(readings)
        if changed and len(clock_parts) == 3:
            p0, p1, p2 = clock_parts["p0"], clock_parts["p1"], clock_parts["p2"]
            changed_at = (p0 << 32 | p1 << 16 | p2) / 1000
            counts.latencies.append(arrived - changed_at)
            counts.read_latencies.append(read - changed_at)
            polled_at = datetime.fromisoformat(readings[0]["ts"]).timestamp()
            counts.after_poll.append(arrived - polled_at)
            counts.arrivals.append((changed_at, arrived))


async def client(url: str, start: float, stop: float, counts: Counts) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, max_msg_size=0, autoping=True) as ws,
    ):
        async for message in ws:
            now = time.time()
            if now >= stop:
                return
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = orjson.loads(message.data)
            if frame.get("type") != "readings" or now < start:
                continue
            counts.frames += 1
            counts.readings += len(frame["readings"])


async def run(args: argparse.Namespace) -> None:
    counts = Counts()
    tasks = [
        asyncio.create_task(client(args.url, args.start, args.stop, counts))
        for _ in range(args.clients)
    ]
    await asyncio.wait(tasks, timeout=max(0.0, args.stop - time.time()) + 5)
    for task in tasks:
        task.cancel()
    print(
        json.dumps(
            {"readings": counts.readings, "frames": counts.frames, "latencies": counts.latencies}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--stop", type=float, required=True)
    parser.add_argument("--clock", action="store_true")
    parser.add_argument(
        "--read-every", type=float, default=2.0, help="ms between rounds of reads (--clock)"
    )
    args = parser.parse_args()
    if args.clock:
        counts = Counts()
        for frames in clock_clients(args.url, args.clients, args.stop, args.read_every / 1000):
            count_clock(frames, args.start, args.stop, counts)
        print(json.dumps(vars(counts)))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
