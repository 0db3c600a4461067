"""Modbus RTU server for a :class:`~simulators.modbus.simulator.ModbusSimulator` on a pty.

The simulator's units share one bus: a request for a unit that is not there gets no
answer (that slave's silence), unit 0 is broadcast (writes reach every unit, nobody
answers). Requests are framed by length (:mod:`simulators.modbus.rtu_frame`). After
garbage the parser drops a byte at a time until a frame with a valid CRC starts the
buffer; a request with a bad CRC is ignored and counted, as a real slave does.

Answers go out one at a time, in order, through a timing thread (see
:class:`~simulators.modbus.wire_clock.WireClock`): with ``wire_time`` each is written
when it would have finished arriving over a real line at the configured baud rate.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from pathlib import Path
from typing import Final

from simulators.modbus.profile import load_profile
from simulators.modbus.rtu_frame import (
    MAX_FRAME,
    MIN_FRAME,
    crc16,
    length_by_crc,
    request_length,
)
from simulators.modbus.simulator import ModbusSimulator
from simulators.modbus.wire_clock import WireClock
from simulators.pty_device import PtyDevice

#: the profile ``device-bridge simulate modbus-rtu`` serves when given none
RTU_DEMO_PROFILE: Final = Path(__file__).parent.parent / "profiles" / "rtu_demo.yaml"

BROADCAST: Final = 0
WRITE_FUNCTIONS: Final = frozenset({5, 6, 15, 16})
#: received bytes kept while looking for a frame; older ones are dropped as garbage
_MAX_BUFFER: Final = 2 * MAX_FRAME


class ModbusRtuServer(PtyDevice):
    """Serves ``simulator``'s units as one RS-485 bus on a pty.

    ``async with ModbusRtuServer(sim) as server`` creates the pty; :attr:`path` is what
    a client opens. Fault switches, plain attributes read on every answer, in addition
    to the simulator's own (``silent``, ``delay``, ``garbage``, exceptions):

    - ``bad_crc``: answers carry a corrupted CRC;
    - ``wrong_unit``: answers carry another unit id (with a CRC valid for it);
    - ``stray_bytes``: sent just before each answer, like noise at bus turnaround;
    - ``truncate``: only the first half of each answer is sent;
    - late answers: ``simulator.delay`` seconds after the request.

    Counters: ``crc_errors`` (requests failing the CRC; a run of garbage counts once)
    and ``requests_answered`` (requests that got any bytes back, faulty or not). Each
    request is logged in ``simulator.requests`` on arrival, a broadcast once as unit 0.

    ``wire_time=True`` emulates the line speed a pty ignores: an answer is written at
    ``t_request_complete + silent_interval + len(answer) * char_time``, where the request
    is complete ``len(request) * char_time`` after its first byte arrived; an answer also
    keeps the silent interval after the previous answer, and ``simulator.delay`` adds to
    it. The silent interval is 3.5 characters, or 1.75 ms above 19200 baud, as the Modbus
    serial line specification (2.5.1.1) fixes it. ``char_time`` is
    ``(1 + bytesize + (parity != "N") + stopbits) / baudrate``. Answers are only ever
    late, never early: what the pty and the event loop add comes on top. Without
    ``wire_time`` an answer goes out at once (after ``delay``). Either way answers leave
    one at a time, in the order of the requests.
    """

    def __init__(
        self,
        simulator: ModbusSimulator,
        *,
        baudrate: int = 19200,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: int = 1,
        wire_time: bool = False,
        link_dir: str | None = None,
        name: str = "ttyRTU0",
    ) -> None:
        if baudrate <= 0:
            raise ValueError(f"baudrate must be positive, not {baudrate}")
        if bytesize not in (5, 6, 7, 8):
            raise ValueError(f"bytesize must be 5..8, not {bytesize}")
        if parity not in ("N", "E", "O", "M", "S"):
            raise ValueError(f"parity must be one of N, E, O, M, S, not {parity!r}")
        if stopbits not in (1, 2):
            raise ValueError(f"stopbits must be 1 or 2, not {stopbits}")
        super().__init__(link_dir, name)
        self.simulator = simulator
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = parity
        self.stopbits = stopbits
        self.wire_time = wire_time
        self.bad_crc = False
        self.wrong_unit = False
        self.stray_bytes: bytes | None = None
        self.truncate = False
        self.crc_errors = 0
        self.requests_answered = 0
        self._clock: WireClock | None = None
        self._rx = bytearray()
        self._rx_base = 0  # stream offset of _rx[0]
        # (stream offset of a chunk's first byte, when that byte began on the line)
        self._chunks: deque[tuple[int, float]] = deque()
        self._rx_line_free = 0.0  # when the last received byte has finished on the line
        self._tx_line_free = 0.0  # when the last scheduled answer has finished
        self._in_garbage = False

    def clear_faults(self) -> None:
        """Switch this server's faults and the simulator's off (see
        :meth:`ModbusSimulator.clear_faults`)."""
        self.bad_crc = False
        self.wrong_unit = False
        self.stray_bytes = None
        self.truncate = False
        self.simulator.clear_faults()

    # ------------------------------------------------------------------------- line timing

    @property
    def char_time(self) -> float:
        """Seconds one character takes on the emulated line."""
        bits = 1 + self.bytesize + (self.parity != "N") + self.stopbits
        return bits / self.baudrate

    @property
    def silent_interval(self) -> float:
        """Seconds of silence before an answer: 3.5 characters, fixed at 1.75 ms above
        19200 baud (Modbus over serial line, 2.5.1.1)."""
        return 3.5 * self.char_time if self.baudrate <= 19200 else 0.00175

    def _started(self) -> None:
        self._clock = WireClock(self._port.write, lambda: self._generation)
        self._clock.start()

    async def _stopping(self) -> None:
        clock, self._clock = self._clock, None
        if clock is not None:
            clock.stop()
            # its waits end at once when stopped, so this joins within microseconds;
            # not through the executor, whose threads other code may be holding
            clock.join(timeout=1.0)

    # ------------------------------------------------------------------------- framing

    def _reset_input(self) -> None:
        """Forget a half-received request: the host went away or the port was pulled."""
        self._rx.clear()
        self._chunks.clear()
        self._in_garbage = False
        self._tx_line_free = 0.0

    def _on_data(self, data: bytes) -> None:
        # the pty hands over a whole write at once; on a wire its bytes would trickle in
        # one character time apart, starting no sooner than the previous ones ended
        began = max(time.perf_counter(), self._rx_line_free)
        self._chunks.append((self._rx_base + len(self._rx), began))
        self._rx_line_free = began + len(data) * self.char_time
        self._rx += data
        if len(self._rx) > _MAX_BUFFER:
            self._drop(len(self._rx) - _MAX_BUFFER)
        self._parse()

    def _parse(self) -> None:
        rx = self._rx
        while len(rx) >= 2:
            length = request_length(rx)
            if length == 0 and not 1 <= rx[1] <= 6 and rx[1] not in (15, 16):
                length = length_by_crc(rx)  # an unsupported function: find it by CRC
            if length is None:
                if not self._frame_further(rx):
                    return  # a request still arriving
                self._drop(1)  # not a request after all: a valid one follows it
                continue
            if length and len(rx) >= length and crc16(rx[:length]) == 0:
                frame = bytes(rx[:length])
                complete = self._finished_at(self._rx_base + length - 1)
                self._consume(length)
                self._in_garbage = False
                self._on_frame(frame, complete)
                continue
            self._drop(1)

    @staticmethod
    def _frame_further(rx: bytearray) -> bool:
        """Whether a complete, valid request starts past ``rx[0]``."""
        for start in range(1, len(rx) - MIN_FRAME + 1):
            length = request_length(rx, start)
            end = start + (length or len(rx))
            if length and end <= len(rx) and crc16(memoryview(rx)[start:end]) == 0:
                return True
        return False

    def _drop(self, count: int) -> None:
        if not self._in_garbage:
            self.crc_errors += 1
            self._in_garbage = True
        self._consume(count)

    def _consume(self, count: int) -> None:
        del self._rx[:count]
        self._rx_base += count
        if not self._rx:
            self._chunks.clear()
        while len(self._chunks) > 1 and self._chunks[1][0] <= self._rx_base:
            self._chunks.popleft()

    def _finished_at(self, offset: int) -> float:
        """When the byte at stream ``offset`` would have finished arriving on the line."""
        for start, began in reversed(self._chunks):
            if start <= offset:
                return began + (offset - start + 1) * self.char_time
        return time.perf_counter()  # not reached: the byte is in the buffer

    # ------------------------------------------------------------------------- answers

    def _on_frame(self, frame: bytes, complete: float) -> None:
        unit, pdu = frame[0], frame[1:-2]
        if unit == BROADCAST:
            self._broadcast(pdu)
            return
        answer = self.simulator.handle(unit, pdu)
        if answer is None:
            return
        out = self._dress(unit, answer)
        self.requests_answered += 1
        delay = max(0.0, self.simulator.delay)
        if self.wire_time:
            char = self.char_time
            begins = max(complete + delay, self._tx_line_free) + self.silent_interval
            due = begins + len(out) * char
            self._tx_line_free = due
        else:
            due = time.perf_counter() + delay
        if self._clock is not None:
            self._clock.submit(due, out, self._generation)

    def _dress(self, unit: int, answer: bytes) -> bytes:
        """The bytes that go on the line for ``answer``, the fault switches applied."""
        garbage = self.simulator.garbage
        if garbage is not None:
            body = garbage
        else:
            # unit % 247 + 1 is never unit itself, and stays a valid slave address
            body = bytes([unit % 247 + 1 if self.wrong_unit else unit]) + answer
            crc = crc16(body)
            if self.bad_crc:
                crc ^= 0xFFFF
            body += crc.to_bytes(2, "little")
            if self.truncate:
                body = body[: max(1, len(body) // 2)]
        return (self.stray_bytes or b"") + body

    def _broadcast(self, pdu: bytes) -> None:
        simulator = self.simulator
        simulator.handle(BROADCAST, pdu)  # logs it once, as unit 0; nobody answers
        if not pdu or pdu[0] not in WRITE_FUNCTIONS:
            return
        # apply the write to every unit without logging it once more per unit
        log, simulator.requests = simulator.requests, []
        try:
            for unit in sorted(simulator.units):
                if unit != BROADCAST:
                    simulator.handle(unit, pdu)
        finally:
            simulator.requests = log


async def run_rtu_simulator(
    profile: str | None, baudrate: int, wire_time: bool, *, link_dir: str | None = None
) -> None:
    """Serve ``profile`` (default: the bundled two flow meters) as an RTU bus until
    cancelled.

    Prints one line saying what to open, e.g.
    ``modbus-rtu simulator on /dev/pts/3 (units 3, 4) at 19200 baud``. Raises
    :class:`~simulators.modbus.profile.ProfileError` for a bad profile and OSError when no pty
    can be made.
    """
    simulator = load_profile(profile if profile is not None else RTU_DEMO_PROFILE)
    async with ModbusRtuServer(
        simulator, baudrate=baudrate, wire_time=wire_time, link_dir=link_dir
    ) as server:
        units = ", ".join(str(unit) for unit in sorted(simulator.units)) or "none"
        timing = " (wire timing)" if wire_time else ""
        print(
            f"modbus-rtu simulator on {server.path} (units {units}) at {baudrate} baud{timing}",
            flush=True,
        )
        await asyncio.Event().wait()
