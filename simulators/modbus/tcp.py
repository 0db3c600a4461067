"""Modbus TCP server for a :class:`~simulators.modbus.simulator.ModbusSimulator`: MBAP framing only.

Each frame is ``transaction id, protocol id (0), length, unit id`` (big-endian
``>HHHB``) followed by the PDU; ``length`` counts the unit id and the PDU. Requests of
one connection are answered in order, one at a time, so a ``delay`` holds back the
requests queued behind it on that connection but never other connections.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import Final

from simulators.lifecycle import Simulator
from simulators.modbus.profile import DEMO_PROFILE, load_profile
from simulators.modbus.simulator import ModbusSimulator

_MBAP: Final = struct.Struct(">HHHB")
#: a length field covers the unit id and a PDU of 1..253 bytes
_MIN_LENGTH: Final = 2
_MAX_LENGTH: Final = 254


class ModbusTcpServer(Simulator[int]):
    """Serves ``simulator`` over Modbus TCP.

    ``async with ModbusTcpServer(sim) as server`` listens on an ephemeral port of
    127.0.0.1 (unless :meth:`start` was called first) and stops on exit.

    Fault switches of the framing, plain attributes read on every answer, beside the
    simulator's own (``silent``, ``delay``, ``garbage``, ``reply_fault``, exceptions):

    - ``wrong_transaction``: answers carry the transaction id + 1;
    - ``wrong_unit``: answers carry the unit id + 1;
    - ``truncate``: only the first half of each answer is sent;
    - ``reset_after_reply``: the connection is reset (RST) after each answer.
    """

    def __init__(self, simulator: ModbusSimulator) -> None:
        self.simulator = simulator
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        #: connection tasks cancelled by drop_connections() or stop(), not by someone else
        self._dropping: set[asyncio.Task[None]] = set()
        self._unsubscribe_drop: Callable[[], None] | None = None
        #: connections accepted since the start
        self.accepted = 0
        self.wrong_transaction = False
        self.wrong_unit = False
        self.truncate = False
        self.reset_after_reply = False

    @property
    def port(self) -> int:
        """The bound port; RuntimeError before :meth:`start`."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def connections(self) -> int:
        """Connections open right now."""
        return len(self._connections)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0: an ephemeral port) and return the bound port.

        ``host`` should name one address: with several, only the first socket's port
        is reported.
        """
        self._check_not_running()
        self._server = await asyncio.start_server(self._serve, host, port)
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._unsubscribe_drop = self.simulator.on_drop(self._drop_all)
        return self._port

    async def stop(self) -> None:
        """Stop listening and close every open connection; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._unsubscribe_drop is not None:
            self._unsubscribe_drop()
            self._unsubscribe_drop = None
        server.close()
        tasks = list(self._connections)
        self._drop_all()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    def _drop_all(self) -> None:
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            if task not in self._dropping:
                self._dropping.add(task)
                task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._server is None:  # accepted just before stop()
            writer.transport.abort()
            return
        self._connections[task] = writer
        self.accepted += 1
        try:
            await self._exchange(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away: nothing to answer
        except asyncio.CancelledError:
            # asyncio (3.11) logs a connection callback that ends cancelled as an error,
            # so a cancellation of our own making ends the handler normally
            if task not in self._dropping:
                raise
            task.uncancel()
        finally:
            self._dropping.discard(task)
            self._connections.pop(task, None)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            header = await reader.readexactly(_MBAP.size)
            transaction, protocol, length, unit = _MBAP.unpack(header)
            if protocol != 0 or not _MIN_LENGTH <= length <= _MAX_LENGTH:
                return  # cannot find the next frame boundary: give up the connection
            pdu = await reader.readexactly(length - 1)
            response = self.simulator.handle(unit, pdu)
            if response is None:
                continue
            delay = self.simulator.delay
            if delay > 0:
                await asyncio.sleep(delay)
            garbage = self.simulator.garbage
            if garbage is not None:
                writer.write(garbage)
            else:
                writer.write(self._frame(transaction, unit, response))
            await writer.drain()
            if self.reset_after_reply:
                _reset(writer)
                return

    def _frame(self, transaction: int, unit: int, response: bytes) -> bytes:
        transaction = (transaction + self.wrong_transaction) & 0xFFFF
        unit = (unit + self.wrong_unit) & 0xFF
        framed = _MBAP.pack(transaction, 0, len(response) + 1, unit) + response
        return framed[: len(framed) // 2] if self.truncate else framed


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset rather than a FIN, as a device that reboots does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def run_tcp_simulator(host: str, port: int, profile: str | None) -> None:
    """Serve ``profile`` (default: the bundled demo) on ``host:port`` until cancelled.

    Prints one line saying where it listens, e.g.
    ``modbus-tcp simulator listening on 127.0.0.1:5020 (units 1)``. Raises
    :class:`~simulators.modbus.profile.ProfileError` for a bad profile and OSError when the
    port cannot be bound.
    """
    simulator = load_profile(profile if profile is not None else DEMO_PROFILE)
    server = ModbusTcpServer(simulator)
    bound = await server.start(host, port)
    async with server:
        shown = f"[{host}]" if ":" in host else host
        units = ", ".join(str(unit) for unit in sorted(simulator.units)) or "none"
        print(f"modbus-tcp simulator listening on {shown}:{bound} (units {units})", flush=True)
        await asyncio.Event().wait()
