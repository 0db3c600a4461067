"""Simulator profiles: YAML files describing units, their register maps and moving values.

The format is documented at the top of ``simulators/profiles/demo.yaml``. Errors are
raised as :class:`ProfileError` naming the file and the place in it, e.g.
``demo.yaml: units.1.values[2].type: unknown type 'float'``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, cast

import yaml

from simulators.modbus.simulator import ModbusSimulator
from simulators.modbus.unit import ModbusDeviceState
from simulators.modbus.values import BIT_TABLES, TABLES, VALUE_TYPES, Order, Table, ValueType
from simulators.waveforms import Counter, Generator, Ramp, RandomWalk, Sine

#: the profile ``device-bridge simulate modbus-tcp`` serves when given none
DEMO_PROFILE: Final = Path(__file__).parent.parent / "profiles" / "demo.yaml"

GENERATORS: Final[dict[str, type[Any]]] = {
    "sine": Sine,
    "ramp": Ramp,
    "random_walk": RandomWalk,
    "counter": Counter,
}
_UNIT_KEYS: Final = frozenset({"name", "values", "unreadable"})
_VALUE_KEYS: Final = frozenset(
    {"table", "address", "type", "value", "generator", "byte_order", "word_order", "length"}
)
_RANGE_KEYS: Final = frozenset({"table", "start", "end"})
_ORDERS: Final = ("big", "little")


class ProfileError(ValueError):
    """A profile that cannot be loaded; the message names the file and the place."""


def load_profile(
    path: str | os.PathLike[str], *, clock: Callable[[], float] = time.monotonic
) -> ModbusSimulator:
    """Read a YAML profile and build the simulator it describes, generators started now."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as file:
            data = yaml.safe_load(file)
    except OSError as error:
        raise ProfileError(f"{source}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ProfileError(f"{source}: not valid YAML: {error}") from None
    return parse_profile(data, source=Path(source).name, clock=clock)


def parse_profile(
    data: object, *, source: str = "<profile>", clock: Callable[[], float] = time.monotonic
) -> ModbusSimulator:
    """Build a simulator from an already parsed profile (a mapping with ``units``)."""

    def fail(where: str, message: str) -> ProfileError:
        return ProfileError(f"{source}: {where}: {message}")

    root = _mapping(data, "(top)", {"units"}, fail)
    simulator = ModbusSimulator(clock=clock)
    units = _mapping(root.get("units", {}), "units", None, fail)
    for raw_id, raw_unit in units.items():
        where = f"units.{raw_id}"
        unit_id = _unit_id(raw_id, where, fail)
        spec = _mapping(raw_unit or {}, where, _UNIT_KEYS, fail)
        name = spec.get("name", "")
        if not isinstance(name, str):
            raise fail(f"{where}.name", "must be text")
        state = simulator.add_unit(unit_id, ModbusDeviceState(name))
        for index, raw_range in enumerate(_list(spec.get("unreadable", []), where, fail)):
            state.unreadable.append(_range(raw_range, f"{where}.unreadable[{index}]", fail))
        for index, raw_value in enumerate(_list(spec.get("values", []), where, fail)):
            _add_value(simulator, unit_id, raw_value, f"{where}.values[{index}]", fail)
    return simulator


_Fail = Callable[[str, str], ProfileError]


def _add_value(simulator: ModbusSimulator, unit: int, raw: object, where: str, fail: _Fail) -> None:
    entry = _mapping(raw, where, _VALUE_KEYS, fail)
    table = _choice(entry.get("table"), TABLES, f"{where}.table", fail)
    address = _integer(entry.get("address"), f"{where}.address", 0, 65535, fail)
    default_type = "bool" if table in BIT_TABLES else "uint16"
    type_ = _choice(entry.get("type", default_type), VALUE_TYPES, f"{where}.type", fail)
    byte_order = _choice(entry.get("byte_order", "big"), _ORDERS, f"{where}.byte_order", fail)
    word_order = _choice(entry.get("word_order", "big"), _ORDERS, f"{where}.word_order", fail)
    length = entry.get("length")
    if length is not None:
        if type_ != "string":
            raise fail(f"{where}.length", "applies to strings only")
        length = _integer(length, f"{where}.length", 1, 123, fail)
    elif type_ == "string":
        raise fail(f"{where}.length", "a string needs length (registers, two characters each)")
    if ("value" in entry) == ("generator" in entry):
        raise fail(where, "give exactly one of value and generator")
    try:
        if "value" in entry:
            value = entry["value"]
            if not isinstance(value, int | float | str):
                raise fail(f"{where}.value", f"must be a number or text, not {value!r}")
            state = simulator.units[unit]
            state.set_value(
                cast(Table, table), address, cast(ValueType, type_), value,
                cast(Order, byte_order), cast(Order, word_order), length=length,
            )  # fmt: skip
        else:
            generator = _generator(entry["generator"], f"{where}.generator", fail)
            simulator.attach(
                unit, cast(Table, table), address, cast(ValueType, type_), generator,
                byte_order=cast(Order, byte_order), word_order=cast(Order, word_order),
            )  # fmt: skip
    except ValueError as error:
        if isinstance(error, ProfileError):
            raise
        raise fail(where, str(error)) from None


def _generator(raw: object, where: str, fail: _Fail) -> Generator:
    spec = dict(_mapping(raw, where, None, fail))
    kind = _choice(spec.pop("kind", None), tuple(GENERATORS), f"{where}.kind", fail)
    cls = GENERATORS[kind]
    params = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key, value in spec.items():
        if key not in params:
            raise fail(f"{where}.{key}", f"unknown for {kind}; known: {', '.join(params)}")
        wanted = int if key == "seed" else (int | float)
        if isinstance(value, bool) or not (isinstance(value, wanted) or value is None):
            raise fail(f"{where}.{key}", f"must be a number, not {value!r}")
    for name, param in params.items():
        no_default = param.default is dataclasses.MISSING
        if name not in spec and no_default and param.default_factory is dataclasses.MISSING:
            raise fail(f"{where}.{name}", f"is required for {kind}")
    try:
        return cast(Generator, cls(**spec))
    except ValueError as error:
        raise fail(where, str(error)) from None


def _range(raw: object, where: str, fail: _Fail) -> tuple[Table, int, int]:
    spec = _mapping(raw, where, _RANGE_KEYS, fail)
    table = _choice(spec.get("table"), TABLES, f"{where}.table", fail)
    start = _integer(spec.get("start"), f"{where}.start", 0, 65535, fail)
    end = _integer(spec.get("end", start), f"{where}.end", start, 65535, fail)
    return cast(Table, table), start, end


def _unit_id(raw: object, where: str, fail: _Fail) -> int:
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    return _integer(raw, where, 0, 255, fail)


def _mapping(
    raw: object, where: str, keys: frozenset[str] | set[str] | None, fail: _Fail
) -> dict[Any, Any]:
    if not isinstance(raw, dict):
        raise fail(where, f"must be a mapping, not {type(raw).__name__}")
    if keys is not None:
        unknown = [str(key) for key in raw if key not in keys]
        if unknown:
            raise fail(
                where, f"unknown keys {', '.join(unknown)}; known: {', '.join(sorted(keys))}"
            )
    return raw


def _list(raw: object, where: str, fail: _Fail) -> list[Any]:
    if not isinstance(raw, list):
        raise fail(where, f"must be a list, not {type(raw).__name__}")
    return raw


def _choice(raw: object, choices: tuple[str, ...], where: str, fail: _Fail) -> str:
    if raw not in choices:
        shown = "missing" if raw is None else repr(raw)
        raise fail(where, f"{shown}: must be one of {', '.join(choices)}")
    return raw


def _integer(raw: object, where: str, low: int, high: int, fail: _Fail) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise fail(where, f"{raw!r}: must be a whole number {low}..{high}")
    return raw
