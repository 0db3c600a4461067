"""A line-protocol instrument (a scale, a sensor) on a pty.

In ``query`` mode it answers each command line with one reading line; in ``stream``
mode it sends a reading line every ``stream_interval`` seconds by itself. Readings come
in one of three formats:

- ``sics`` (Mettler Toledo's SICS ``SI`` answer): ``S S     123.45 g``, the weight
  right-aligned in ten characters, two decimals; ``S D`` while not stable. Anything but
  the command is answered ``ES`` (syntax error).
- ``json``: ``{"weight": 123.45, "temperature": 21.5, "stable": true}``.
- ``csv``: ``123.45,21.5,1``: every value in the order of :attr:`LineInstrument.values`,
  then stable as 1 or 0.

json and csv instruments ignore input other than the command.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Final, Literal, get_args

from simulators.pty_device import PtyDevice
from simulators.waveforms import Generator, Sine

Mode = Literal["query", "stream"]
Format = Literal["sics", "json", "csv"]
MODES: Final[tuple[Mode, ...]] = get_args(Mode)
FORMATS: Final[tuple[Format, ...]] = get_args(Format)

#: input kept while waiting for a command terminator; a longer line is thrown away
MAX_INPUT: Final = 4096


class LineInstrument(PtyDevice):
    """A scale with a temperature sensor, talking lines over a pty.

    State tests may change at any time: ``values`` (``weight`` is the one a SICS line
    shows), ``stable``, ``waves`` (a value named there moves: the waveform of
    :mod:`simulators.waveforms` is added to it, in seconds on ``clock`` since the
    instrument was made), ``moving`` (the weight drifts by a :class:`Sine` of
    ``drift_amplitude`` and ``drift_period``). Weights are shown rounded to the scale's
    resolution, 0.01.

    A command is the input up to and including the last byte of ``command`` (its
    terminator, ``\\n`` for ``SI\\r\\n``); every such input line is recorded in
    ``commands``. Answers go out in order, each ``delay`` seconds after its command;
    one still waiting when the port is unplugged is lost.

    Fault switches, applied to every line sent (reading or ``ES``):

    - ``silent``: nothing is sent, and a command received meanwhile is never answered;
    - ``delay``: seconds between a command and its answer (query mode);
    - ``garbage``: bytes sent instead of each line, for as long as it is set (like the
      Modbus simulator's ``garbage``; set it back to None to clear);
    - ``partial``: only the first half of each line, without ``eol``;
    - ``overlong``: when positive, a line of that many ``X`` without any value, with
      ``eol``;
    - ``stray``: bytes sent just before each line.

    ``setters`` name the values a command sets: with ``{"T": "temperature"}`` the command
    ``T 180.2`` (and its terminator) sets ``values["temperature"]``, in either mode, and is
    not answered (a setter that is not a number is treated as any other input).

    The first of ``garbage``, ``overlong`` and ``partial`` that is set wins. ``lines_sent``
    counts what was sent in place of a line, faulty or not, while plugged in.
    """

    def __init__(
        self,
        *,
        mode: Mode = "query",
        format: Format = "sics",
        command: bytes = b"SI\r\n",
        eol: bytes = b"\r\n",
        stream_interval: float = 0.1,
        link_dir: str | None = None,
        name: str = "ttyLINE0",
        clock: Callable[[], float] = time.monotonic,
        setters: Mapping[str, str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
        if not command:
            raise ValueError("command must not be empty")
        if not eol:
            raise ValueError("eol must not be empty")
        if not stream_interval > 0:
            raise ValueError(f"stream_interval must be positive, not {stream_interval}")
        super().__init__(link_dir, name)
        self.mode: Mode = mode
        self.format: Format = format
        self.command = command
        self.eol = eol
        self.stream_interval = stream_interval
        self.clock = clock
        self.values: dict[str, float] = {"weight": 123.45, "temperature": 21.5}
        self.stable = True
        self.waves: dict[str, Generator] = {}
        self.moving = False
        self.drift_amplitude = 0.5
        self.drift_period = 10.0
        self.silent = False
        self.delay = 0.0
        self.garbage: bytes | None = None
        self.partial = False
        self.overlong = 0
        self.stray: bytes | None = None
        self.setters = dict(setters or {})
        self.commands: list[bytes] = []
        self.lines_sent = 0
        self._epoch = clock()
        self._terminator = command[-1]
        self._rx = bytearray()
        # (due time, the answer or None for a reading, plug generation)
        self._answers: asyncio.Queue[tuple[float, bytes | None, int]] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------------- readings

    def reading(self) -> dict[str, float]:
        """The values as the instrument shows them now (weight drifted and rounded)."""
        elapsed = self.clock() - self._epoch
        shown = dict(self.values)
        for name, wave in self.waves.items():
            shown[name] = shown.get(name, 0.0) + wave.value(elapsed)
        weight = shown.get("weight", 0.0)
        if self.moving:
            weight += Sine(self.drift_amplitude, self.drift_period).value(elapsed)
        shown["weight"] = round(weight, 2)
        return shown

    def line(self) -> bytes:
        """The reading line the instrument would send now, without ``eol`` or faults."""
        shown = self.reading()
        if self.format == "sics":
            status = "S" if self.stable else "D"
            return f"S {status} {shown['weight']:>10.2f} g".encode("ascii")
        if self.format == "json":
            return json.dumps({**shown, "stable": self.stable}).encode("ascii")
        fields = [str(value) for value in shown.values()]
        return ",".join([*fields, "1" if self.stable else "0"]).encode("ascii")

    def clear_faults(self) -> None:
        """Switch every fault off."""
        self.silent = False
        self.delay = 0.0
        self.garbage = None
        self.partial = False
        self.overlong = 0
        self.stray = None

    # ------------------------------------------------------------------------- life cycle

    def _started(self) -> None:
        self._answers = asyncio.Queue()
        self._tasks.append(asyncio.create_task(self._answer_loop(), name="line-answers"))
        if self.mode == "stream":
            self._tasks.append(asyncio.create_task(self._stream_loop(), name="line-stream"))

    async def _stopping(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _reset_input(self) -> None:
        self._rx.clear()

    # ------------------------------------------------------------------------- talking

    def _on_data(self, data: bytes) -> None:
        self._rx += data
        while (end := self._rx.find(self._terminator)) >= 0:
            received = bytes(self._rx[: end + 1])
            del self._rx[: end + 1]
            self._on_command(received)
        if len(self._rx) > MAX_INPUT:
            self._rx.clear()  # no terminator in sight: noise, not a command

    def _on_command(self, received: bytes) -> None:
        self.commands.append(received)
        if self.silent:
            return  # a silent instrument ignores the command, even if it wakes up soon
        if self._set_value(received) or self.mode != "query" or self._answers is None:
            return
        answer: bytes | None
        if received == self.command:
            answer = None  # a reading, taken when it is sent
        elif self.format == "sics":
            answer = b"ES"
        else:
            return
        due = asyncio.get_running_loop().time() + max(0.0, self.delay)
        self._answers.put_nowait((due, answer, self._generation))

    def _set_value(self, received: bytes) -> bool:
        """Take a setter command (``T 180.2``); whether it was one."""
        name, _, number = received.decode("ascii", "replace").strip().partition(" ")
        value_name = self.setters.get(name)
        if value_name is None:
            return False
        try:
            self.values[value_name] = float(number)
        except ValueError:
            return False
        return True

    async def _answer_loop(self) -> None:
        assert self._answers is not None
        loop = asyncio.get_running_loop()
        while True:
            due, answer, generation = await self._answers.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if generation == self._generation:
                self._send(self.line() if answer is None else answer)

    async def _stream_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick = loop.time() + self.stream_interval
        while True:
            await asyncio.sleep(max(0.0, tick - loop.time()))
            self._send(self.line())
            tick += self.stream_interval
            if tick < loop.time():  # fell behind (a loaded machine): skip, do not burst
                tick = loop.time() + self.stream_interval

    def _send(self, line: bytes) -> None:
        if self.silent or not self._port.plugged:
            return
        if self.garbage is not None:
            out = self.garbage
        elif self.overlong > 0:
            out = b"X" * self.overlong + self.eol
        elif self.partial:
            out = line[: len(line) // 2]
        else:
            out = line + self.eol
        self._port.write((self.stray or b"") + out)
        self.lines_sent += 1


async def run_line_simulator(
    mode: Mode = "query",
    format: Format = "sics",
    interval: float = 0.1,
    *,
    link_dir: str | None = None,
) -> None:
    """Run a :class:`LineInstrument` until cancelled.

    Prints one line saying what to open, e.g.
    ``serial-line simulator (query, sics) on /dev/pts/3``. Raises OSError when no pty
    can be made.
    """
    async with LineInstrument(
        mode=mode, format=format, stream_interval=interval, link_dir=link_dir
    ) as instrument:
        print(f"serial-line simulator ({mode}, {format}) on {instrument.path}", flush=True)
        await asyncio.Event().wait()
