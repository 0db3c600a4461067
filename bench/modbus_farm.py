"""A Modbus TCP device farm for the benchmarks, in a process of its own.

N devices on N consecutive ports, each with M holding registers that all change on every
request (register i answers ``counter + i``), or, with ``--clock``, registers 0-2 holding
the time (Unix milliseconds, 48 bits) at which the values last changed, every
``--change-ms``. Written here with its own MBAP framing, independent of the bridge's
drivers and simulators, so that no code under test serves it. Only function 3.

    python bench/modbus_farm.py --devices 50 --registers 100 --port 5900
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import struct
import time

HEADER = struct.Struct(">HHHBBHH")  # transaction, protocol, length, unit, function, address, count


class Device(asyncio.Protocol):
    def __init__(self, registers: int, clock_ms: int | None) -> None:
        self.registers = registers
        self.clock_ms = clock_ms
        self.counter = 0
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 12:
            tid, _, length, unit, function, address, count = HEADER.unpack_from(self.buffer)
            frame_end = 6 + length
            if len(self.buffer) < frame_end:
                return
            self.buffer = self.buffer[frame_end:]
            assert self.transport is not None
            if function != 3 or address + count > self.registers or not 1 <= count <= 125:
                self.transport.write(struct.pack(">HHHBBB", tid, 0, 3, unit, function | 0x80, 2))
                continue
            self.counter += 1
            values = [(self.counter + address + i) & 0xFFFF for i in range(count)]
            if self.clock_ms is not None and address == 0 and count >= 3:
                now = int(time.time() * 1000)
                changed = now - now % self.clock_ms
                values[0:3] = [changed >> 32 & 0xFFFF, changed >> 16 & 0xFFFF, changed & 0xFFFF]
            reply = struct.pack(
                f">HHHBBB{count}H", tid, 0, 3 + 2 * count, unit, 3, 2 * count, *values
            )
            self.transport.write(reply)


async def serve(devices: int, registers: int, port: int, clock_ms: int | None) -> None:
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(lambda: Device(registers, clock_ms), "127.0.0.1", port + i)
        for i in range(devices)
    ]
    print(f"farm: {devices} devices on ports {port}-{port + devices - 1}", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--registers", type=int, default=100)
    parser.add_argument("--port", type=int, default=5900)
    parser.add_argument("--clock", action="store_true", help="registers 0-2: time of change")
    parser.add_argument("--change-ms", type=int, default=10)
    args = parser.parse_args()
    clock = args.change_ms if args.clock else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.devices, args.registers, args.port, clock))


if __name__ == "__main__":
    main()
