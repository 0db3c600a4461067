"""WebSocket subscribers for the benchmarks, in a process of their own.

Opens ``--clients`` connections to a stream URL (the bridge's or Node-RED's: both send
``{"type": "readings", "readings": [...]}`` frames), counts the readings received between
``--start`` and ``--stop`` (Unix times) and prints one JSON line: readings, frames and,
with ``--clock``, the latency of every frame that carries the farm's clock registers
(device ``d0``, points ``p0``-``p2``: the time the values changed, in ms).

With ``--clock`` the clients are as cheap as can be while frames arrive, so that their
own work is not counted as the bridge's delay: each is an asyncio protocol that reads the
WebSocket frames off its socket, notes the time (``time.time()``, in the client process,
when the read that completed the frame returned) and keeps the payload; the JSON is
parsed once the run is over. A frame's latency is that arrival time minus the time the
farm changed the values it carries, so it includes the wait for the bridge's next poll,
the poll, the bridge's fan-out and the kernel's delivery, and whatever delay the client
process itself had in being scheduled to read (the machine's cores are shared), but not
the clients' parsing. Without ``--clock`` the clients are aiohttp's and parse as they go.

    python bench/subscribers.py ws://127.0.0.1:5990/api/v1/stream --clients 250 \
        --start T0 --stop T1 [--clock]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import time
from urllib.parse import urlsplit

import aiohttp
import orjson


class Counts:
    def __init__(self) -> None:
        self.readings = 0
        self.frames = 0
        self.latencies: list[float] = []


class ClockClient(asyncio.Protocol):
    """A WebSocket client that only frames what arrives and notes when: (time, payload)."""

    def __init__(self, request: bytes, stop: float) -> None:
        self.request = request
        self.stop = stop
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.frames: list[tuple[float, bytes]] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)
        asyncio.get_running_loop().call_later(max(0.0, self.stop - time.time()), self.finish)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(buffer[:end].decode(errors="replace"))
            self.upgraded = True
            buffer = buffer[end + 4 :]
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
                self.frames.append((now, payload))
            elif opcode == 0x9:  # ping: a pong with the same payload, masked (zero mask)
                self.send(0xA, payload)
            elif opcode == 0x8:
                self.finish()
        self.buffer = buffer[at:]
        if now >= self.stop:
            self.finish()

    def send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        assert len(payload) < 126  # control frames only
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0" * 4 + payload)

    def finish(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send(0x8, struct.pack("!H", 1000))
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def clock_client(url: str, stop: float) -> list[tuple[float, bytes]]:
    """The text frames one connection received until ``stop``, each with its arrival time."""
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {split.path or '/'}{'?' + split.query if split.query else ''} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: ClockClient(request, stop), host, port)
    try:
        await protocol.done
    finally:
        protocol.finish()
    return protocol.frames


def count_clock(
    frames: list[tuple[float, bytes]], start: float, stop: float, counts: Counts
) -> None:
    """Parse one connection's frames after the run: readings in the window and latencies."""
    clock_parts: dict[str, int] = {}  # the latest of p0-p2: only changes are sent
    for now, payload in frames:
        if now >= stop:
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
        if frame["type"] != "readings" or now < start:
            continue
        counts.frames += 1
        counts.readings += len(readings)
        if changed and len(clock_parts) == 3:
            p0, p1, p2 = clock_parts["p0"], clock_parts["p1"], clock_parts["p2"]
            counts.latencies.append(now - (p0 << 32 | p1 << 16 | p2) / 1000)


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
    if args.clock:
        received = await asyncio.wait_for(
            asyncio.gather(*(clock_client(args.url, args.stop) for _ in range(args.clients))),
            timeout=max(0.0, args.stop - time.time()) + 5,
        )
        for frames in received:
            count_clock(frames, args.start, args.stop, counts)
        print(json.dumps(vars(counts)))
        return
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
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
