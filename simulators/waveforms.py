"""Waveforms: values that move with time, for simulated registers and instruments alike.

A waveform gives ``value(elapsed)`` for the seconds since it was attached; the Modbus
simulator binds one to a register (:meth:`~simulators.modbus.ModbusSimulator.attach`), the
line instrument to a reading.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Protocol


class Generator(Protocol):
    """A value that moves with time: ``value(elapsed)`` for seconds since it was attached."""

    def value(self, elapsed: float) -> float: ...


@dataclass(slots=True)
class Sine:
    """``offset + amplitude * sin(2π * elapsed / period)``."""

    amplitude: float
    period: float
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not self.period > 0:
            raise ValueError(f"period must be positive, not {self.period}")

    def value(self, elapsed: float) -> float:
        return self.offset + self.amplitude * math.sin(2 * math.pi * elapsed / self.period)


@dataclass(slots=True)
class Ramp:
    """``start + step * elapsed``, back to ``start`` on reaching ``wrap`` (if set)."""

    start: float = 0.0
    step: float = 1.0
    wrap: float | None = None

    def __post_init__(self) -> None:
        if self.wrap is not None and (self.wrap - self.start) * self.step <= 0:
            raise ValueError(
                f"wrap ({self.wrap}) must lie beyond start ({self.start}) "
                f"in the direction of step ({self.step})"
            )

    def value(self, elapsed: float) -> float:
        if self.wrap is None:
            return self.start + self.step * elapsed
        return self.start + math.fmod(self.step * elapsed, self.wrap - self.start)


@dataclass(slots=True)
class Counter:
    """``start + floor(increment * elapsed)``: a whole-number count, such as run seconds."""

    start: int = 0
    increment: float = 1.0

    def value(self, elapsed: float) -> float:
        return self.start + math.floor(self.increment * elapsed)


@dataclass(slots=True)
class RandomWalk:
    """Moves by a uniform step in ``[-step, step]`` every ``interval`` seconds, kept in
    ``[min, max]``. Steps depend on elapsed time, not on how often it is read; ``seed``
    makes the walk repeatable."""

    start: float
    min: float
    max: float
    step: float = 1.0
    interval: float = 1.0
    seed: int | None = None
    _current: float = field(init=False)
    _steps: int = field(init=False, default=0)
    _rng: random.Random = field(init=False)

    #: a clock jump beyond this many steps skips ahead instead of looping for ever
    MAX_CATCH_UP = 10_000

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if not self.interval > 0:
            raise ValueError(f"interval must be positive, not {self.interval}")
        self._current = max(self.min, min(self.max, self.start))
        self._rng = random.Random(self.seed)

    def value(self, elapsed: float) -> float:
        target = max(0, math.floor(elapsed / self.interval))
        self._steps = max(self._steps, target - self.MAX_CATCH_UP)
        while self._steps < target:
            moved = self._current + self._rng.uniform(-self.step, self.step)
            self._current = max(self.min, min(self.max, moved))
            self._steps += 1
        return self._current
