"""Engineering-unit scaling (drivers/scaling.py), shared by every driver family."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.scaling import NOT_FINITE, NumericPoint, Scaling, decimal_places


@pytest.mark.parametrize(
    ("text", "places"),
    [("12", 0), ("12.50", 1), ("0.01", 2), ("1e-3", 3), ("1.5E-2", 3), ("1e3", 0), ("1ex", 0)],
)
def test_decimal_places_of_a_number_as_written(text: str, places: int) -> None:
    assert decimal_places(text) == places


def test_a_scaled_value_has_the_places_of_the_exact_decimal_result() -> None:
    assert Scaling(0.01, 0).apply(1234) == 12.34
    assert Scaling(0.1, 0.05).apply(3) == 0.35
    assert Scaling(2, 0).apply(1.1, raw_places=1) == 2.2
    assert Scaling(1e300, 0).apply(1e300) is NOT_FINITE


def test_identity_passes_values_unchanged() -> None:
    scaling = Scaling(1, 0)
    assert scaling.identity
    unchanged = scaling.invert("p", 41)
    assert unchanged == 41
    assert isinstance(unchanged, int)


@given(
    raw=st.integers(min_value=-(10**6), max_value=10**6),
    scale=st.sampled_from([0.001, 0.01, 0.1, 0.5, 2.0, 10.0]),
    offset=st.sampled_from([0.0, -10.0, 0.25, 273.15]),
)
def test_writing_a_read_value_sends_the_raw_value_it_was_read_from(
    raw: int, scale: float, offset: float
) -> None:
    scaling = Scaling(scale, offset)
    value = scaling.apply(raw)
    assert isinstance(value, float)
    # the reading is the exact decimal result, and its inverse is the raw value again
    exact = Decimal(raw) * Decimal(repr(scale)) + Decimal(repr(offset))
    assert Decimal(repr(value)) == exact
    assert scaling.invert("p", value) == raw


def test_an_inverse_beyond_any_float_is_a_bad_value() -> None:
    from drivers.base import BadValue

    with pytest.raises(BadValue, match="out of range"):
        Scaling(1e-300, 0).invert("p", 1e300)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scale": 0}, "scale must not be 0"),
        ({"min": 5, "max": 1}, "min (5) is greater than max (1)"),
        ({"scale": "0.1"}, "valid number"),
    ],
)
def test_a_numeric_point_checks_its_scale_and_bounds(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        NumericPoint.model_validate({"id": "p", **fields})
