"""Engineering units: ``value = raw * scale + offset``, its inverse for writes, and its checks.

Every numeric point of every driver family scales the same way. A scaled value is rounded
to the decimal places the exact decimal result has: the places of the raw value as the
device gave it plus those of ``scale``, or those of ``offset`` if they are more. So
``1234 * 0.01`` reads ``12.34``, not ``12.340000000000002``, and nothing a decimal
calculation would keep is ever dropped. A result that is NaN or infinite is
:data:`NOT_FINITE`: JSON cannot carry it, and it is never a reading.

For a write the inverse ``raw = (value - offset) / scale`` is worked out in decimal
arithmetic on the numbers as written, so that ``(12.3 - 0) / 0.1`` is ``123``, not
``122.99999999999999``, and ``(-9.999 + 10) / 0.001`` is ``1``: a value read and written
back sends the raw value it was read from.
:class:`NumericPoint` is the base of every point with a scale: ``scale`` is never 0 and
``min``, bounding what may be written, is never above ``max``.
"""

from __future__ import annotations

import math
from decimal import Decimal
from functools import cached_property

from pydantic import Field, model_validator

from drivers.base import BadValue, PointConfig, PointFailure

NOT_FINITE = PointFailure("not a finite number")


def decimal_places(text: str) -> int:
    """Decimal places of a number as written (``12.50`` has 1, ``1e-3`` has 3)."""
    mantissa, _, exponent = text.lower().partition("e")
    fraction = mantissa.partition(".")[2].rstrip("0")
    try:
        shift = int(exponent) if exponent else 0
    except ValueError:
        shift = 0
    return max(len(fraction) - shift, 0)


class Scaling:
    """One point's scale and offset, with the decimal places they carry worked out once."""

    __slots__ = ("identity", "offset", "offset_places", "scale", "scale_places")

    def __init__(self, scale: float, offset: float) -> None:
        self.scale = scale
        self.offset = offset
        self.identity = scale == 1 and offset == 0
        """Neither given: values pass unchanged (an integer stays an int)."""
        self.scale_places = decimal_places(repr(scale))
        self.offset_places = decimal_places(repr(offset))

    def apply(self, raw: float, raw_places: int = 0) -> float | PointFailure:
        """``raw * scale + offset``, rounded as the module says; ``raw_places`` are the
        decimal places of ``raw`` as the device gave it (none for an integer)."""
        value = raw * self.scale + self.offset
        if not math.isfinite(value):
            return NOT_FINITE
        return round(value, max(raw_places + self.scale_places, self.offset_places))

    def invert(self, point_id: str, value: float | int) -> float | int:
        """The raw value that reads as ``value``; BadValue if there is no finite one."""
        if self.identity:
            return value
        exact = (Decimal(repr(value)) - Decimal(repr(self.offset))) / Decimal(repr(self.scale))
        raw = float(exact)
        if not math.isfinite(raw):
            raise BadValue(f"{value!r} is out of range for point {point_id!r}")
        return raw


class NumericPoint(PointConfig):
    """A point whose numbers are scaled into engineering units and may be bounded for writes."""

    scale: float = Field(default=1.0, strict=True, allow_inf_nan=False)
    offset: float = Field(default=0.0, strict=True, allow_inf_nan=False)
    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _scale_and_bounds(self) -> NumericPoint:
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g})")
        return self

    @cached_property
    def scaling(self) -> Scaling:
        """This point's scale and offset."""
        return Scaling(self.scale, self.offset)
