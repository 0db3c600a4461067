"""Serial-line parsing and conversion (pure functions) and the device entry's validation."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import ConfigError, parse_config
from drivers.base import PointFailure
from drivers.serial_line.config import LineParse, SerialLinePoint
from drivers.serial_line.parsers import parse_line, point_value, record_values

SICS = r"^S S\s+(?P<weight>-?\d+(\.\d+)?) g"


def parser(**given: Any) -> LineParse:
    return LineParse.model_validate(given)


def point(**given: Any) -> SerialLinePoint:
    return SerialLinePoint.model_validate({"id": "p", **given})


@pytest.mark.parametrize(
    ("parse", "line", "record"),
    [
        # the demo's SICS example (bridge/demo/devices.yaml)
        ({"regex": SICS}, "S S     123.45 g", {"weight": "123.45"}),
        ({"regex": SICS}, "S S    -0.5 g\r", {"weight": "-0.5"}),
        ({"regex": SICS}, "S D     123.45 g", None),  # dynamic (unstable) weight
        ({"regex": SICS}, "ES", None),
        ({"regex": SICS}, "", None),
        # a group that took no part is None; unnamed groups are not fields
        (
            {"regex": r"T=(?P<t>[-\d.]+)( H=(?P<h>[\d.]+))?"},
            "T=21.5",
            {"t": "21.5", "h": None},
        ),
        # search, not match: unanchored patterns find their record anywhere
        ({"regex": r"(?P<v>\d+)mV"}, "ch1: 512mV ok", {"v": "512"}),
        # JSON objects, nested ones flattened
        (
            {"json": True},
            '{"weight": 123.45, "temperature": 21.5, "stable": true}',
            {"weight": 123.45, "temperature": 21.5, "stable": True},
        ),
        (
            {"json": True},
            '{"a": {"b": [1, {"c": null}]}, "s": "x"}',
            {"a.b.0": 1, "a.b.1.c": None, "s": "x"},
        ),
        ({"json": True}, '{"weight": 1.5}\r\n', {"weight": 1.5}),
        ({"json": True}, "[1, 2]", None),  # not an object
        ({"json": True}, "42", None),
        ({"json": True}, '{"weight": 1.5', None),  # cut short
        ({"json": True}, "garbage", None),
        ({"json": True}, "", None),
        # CSV: as many cells as columns, blanks around cells dropped, quotes honoured
        (
            {"csv": ["weight", "temperature", "stable"]},
            "123.45,21.5,1",
            {"weight": "123.45", "temperature": "21.5", "stable": "1"},
        ),
        (
            {"csv": ["weight", "temperature", "stable"]},
            " 123.45 , 21.5 ,1\r",
            {"weight": "123.45", "temperature": "21.5", "stable": "1"},
        ),
        ({"csv": ["a", "b"]}, '"x,y",2', {"a": "x,y", "b": "2"}),
        ({"csv": ["a", "b", "c"]}, "123.45,21.5", None),  # too few
        ({"csv": ["a", "b"]}, "123.45,21.5,1", None),  # too many
        ({"csv": ["a", "b"]}, '"x,2', None),  # unbalanced quote
        ({"csv": ["a", "b"], "delimiter": ";"}, "1,5;2,5", {"a": "1,5", "b": "2,5"}),
        ({"csv": ["a", "b"], "delimiter": "\t"}, "1\t2", {"a": "1", "b": "2"}),
        ({"csv": ["a", "b"], "delimiter": ";"}, "1,2", None),
    ],
)
def test_parse_line(parse: dict[str, Any], line: str, record: dict[str, Any] | None) -> None:
    assert parse_line(parser(**parse), line) == record


@pytest.mark.parametrize(
    ("given", "raw", "value"),
    [
        ({}, "123.45", 123.45),
        ({}, " -0.5 ", -0.5),
        ({}, "1e3", 1000.0),
        ({}, 21.5, 21.5),
        ({}, 7, 7.0),
        ({"type": "int"}, "42", 42),
        ({"type": "int"}, "-0042", -42),
        ({"type": "int"}, "12.0", 12),
        ({"type": "int"}, 12.0, 12),
        ({"type": "int"}, 5, 5),
        ({"type": "int"}, str(2**64 - 1), 2**64 - 1),
        ({"type": "bool"}, "1", True),
        ({"type": "bool"}, "0", False),
        ({"type": "bool"}, "TRUE", True),
        ({"type": "bool"}, "Off", False),
        ({"type": "bool"}, " yes ", True),
        ({"type": "bool"}, "no", False),
        ({"type": "bool"}, True, True),
        ({"type": "bool"}, 0, False),
        ({"type": "str"}, " S D ", " S D "),
        ({"type": "str"}, 1.5, "1.5"),
        ({"type": "str"}, True, "true"),
        # scale and offset, rounded to the places the exact result has
        ({"scale": 0.01}, "1234", 12.34),
        ({"scale": 0.1}, "0.3", 0.03),
        ({"scale": 0.001}, 1.1, 0.0011),
        ({"offset": -40}, "65.5", 25.5),
        ({"scale": 0.1, "offset": 0.05}, "3", 0.35),
        ({"scale": 2}, "1.1", 2.2),
        ({"type": "int", "scale": 0.1}, "655", 65.5),
        ({"type": "int", "offset": 1}, "41", 42.0),  # scaled: a float, as in the Modbus codec
        ({"type": "int", "scale": 1, "offset": 0}, "41", 41),
    ],
)
def test_point_value(given: dict[str, Any], raw: Any, value: Any) -> None:
    result = point_value(point(**given), raw)
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize(
    ("given", "raw", "error"),
    [
        ({}, "12,5", "field 'p': '12,5' is not a number"),
        ({}, "", "field 'p': '' is not a number"),
        ({}, True, "field 'p': true is not a number"),
        ({}, "nan", "not a finite number"),
        ({}, "-inf", "not a finite number"),
        ({}, float("nan"), "not a finite number"),
        ({"scale": 1e300}, "1e300", "not a finite number"),
        ({"type": "int"}, "1.5", "field 'p': '1.5' is not an integer"),
        ({"type": "int"}, 1.5, "field 'p': 1.5 is not an integer"),
        ({"type": "int"}, "twelve", "field 'p': 'twelve' is not an integer"),
        ({"type": "int"}, "NaN", "not a finite number"),
        ({"type": "int"}, str(2**64), "is beyond the 64-bit integer range"),
        ({"type": "int"}, False, "field 'p': false is not an integer"),
        ({"type": "bool"}, "maybe", "field 'p': 'maybe' is not a boolean"),
        ({"type": "bool"}, 2, "field 'p': 2 is not a boolean"),
        ({}, None, "field 'p' is empty"),
        ({"field": "weight"}, "x", "field 'weight': 'x' is not a number"),
    ],
)
def test_point_value_failures(given: dict[str, Any], raw: Any, error: str) -> None:
    result = point_value(point(**given), raw)
    assert isinstance(result, PointFailure)
    assert error in result.error


def test_record_values_reports_a_missing_field_per_point() -> None:
    points = [point(id="w", field="weight"), point(id="t", field="temperature")]
    assert record_values(points, {"weight": "1.5"}) == {
        "w": 1.5,
        "t": PointFailure("field 'temperature' is not in the record"),
    }


# the device entry ------------------------------------------------------------------------


def scale_entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "scale",
        "driver": "serial-line",
        "connection": {"port": "/dev/ttyACM0", "baudrate": 9600},
        "mode": "query",
        "command": "SI\r\n",
        "eol": "\r\n",
        "parse": {"regex": SICS},
        "points": [{"id": "weight", "unit": "g"}],
    }
    entry.update(changes)
    return entry


def problems(*devices: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"devices": list(devices)})
    return caught.value.problems


def test_the_contract_example_is_accepted_with_its_defaults() -> None:
    config = parse_config({"devices": [scale_entry()]})
    (device,) = config.devices
    assert device.model_dump(include={"mode", "eol", "encoding", "max_line"}) == {
        "mode": "query",
        "eol": "\r\n",
        "encoding": "ascii",
        "max_line": 256,
    }
    (weight,) = device.points
    assert weight.model_dump(include={"type", "scale", "offset", "field"}) == {
        "type": "float",
        "scale": 1.0,
        "offset": 0.0,
        "field": None,
    }
    assert config.links[0].driver.describe(device) == ["query 'SI\\r\\n', parse regex, 1 point(s)"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"parse": {"regex": "^S S (?P<weight>[0-9.+) g"}},
            "devices[0].parse.regex: not a valid regular expression: unterminated character set",
        ),
        (
            {"parse": {"regex": r"^S S\s+(-?\d+) g"}},
            "devices[0].parse.regex: has no named group",
        ),
        (
            {"parse": {"regex": SICS, "json": True}},
            "devices[0].parse: give only one of regex, json and csv, not regex and json",
        ),
        ({"parse": {}}, "devices[0].parse: give one of regex"),
        ({"parse": {"json": False}}, "devices[0].parse: json: false parses nothing"),
        ({"parse": {"json": True, "delimiter": ";"}}, "devices[0].parse: delimiter applies"),
        ({"parse": {"csv": ["a", "a"]}}, "devices[0].parse.csv: column 'a' is named twice"),
        ({"parse": {"csv": ["weight"], "delimiter": ";;"}}, "devices[0].parse.delimiter:"),
        ({"parse": {"xml": True}}, "devices[0].parse.xml: unknown key"),
        (
            {"points": [{"id": "mass"}]},
            "devices[0].points[0].id: no named group of the regex is named 'mass' (weight)",
        ),
        (
            {"points": [{"id": "weight"}, {"id": "mass", "field": "wieght"}]},
            "devices[0].points[1].field: 'wieght' is not a named group of the regex (weight)",
        ),
        (
            {"parse": {"csv": ["weight", "temp"]}, "points": [{"id": "t", "field": "temperature"}]},
            "devices[0].points[0].field: 'temperature' is not a csv column (weight, temp)",
        ),
        ({"command": None}, "devices[0].command: is required in query mode"),
        ({"mode": "stream"}, "devices[0].command: is not used in stream mode"),
        ({"command": ""}, "devices[0].command:"),
        ({"eol": ""}, "devices[0].eol:"),
        ({"eol": "\\r\\n"}, "devices[0].eol: '\\\\r\\\\n' holds a backslash"),
        ({"command": "SI\\r\\n"}, "devices[0].command: 'SI\\\\r\\\\n' holds a backslash"),
        ({"encoding": "klingon"}, "devices[0].encoding: 'klingon' is not a known encoding"),
        ({"encoding": "utf-16"}, "devices[0].encoding: 'utf-16' is not an ASCII-compatible"),
        ({"command": "Wägen\r\n"}, "devices[0].command: cannot be written in encoding 'ascii'"),
        ({"max_line": 0}, "devices[0].max_line:"),
        ({"points": [{"id": "weight", "type": "float64"}]}, "devices[0].points[0].type:"),
        ({"points": [{"id": "weight", "scale": "2"}]}, "devices[0].points[0].scale:"),
        ({"points": [{"id": "weight", "scale": 0}]}, "devices[0].points[0]: scale must not be 0"),
        (
            {"points": [{"id": "weight", "type": "bool", "offset": 1}]},
            "devices[0].points[0]: scale and offset apply to numbers, not to a bool",
        ),
        ({"points": [{"id": "weight", "writable": True}]}, "devices[0].points[0]: serial-line"),
        ({"points": [{"id": "weight", "table": "holding"}]}, "devices[0].points[0].table: unknown"),
        ({"unit": 1}, "devices[0].unit: unknown key"),
        ({"connection": {"host": "x"}}, "devices[0].connection.host: unknown key"),
    ],
)
def test_validation_errors_name_their_place(changes: dict[str, Any], expected: str) -> None:
    found = problems(scale_entry(**changes))
    assert any(problem.startswith(expected) for problem in found), found


def test_every_problem_of_an_entry_is_reported_at_once() -> None:
    entry = scale_entry(
        command=None, points=[{"id": "weight"}, {"id": "x", "field": "y"}, {"id": "z"}]
    )
    found = problems(entry)
    assert [p.split(":")[0] for p in found] == [
        "devices[0].command",
        "devices[0].points[1].field",
        "devices[0].points[2].id",
    ]


def test_stream_mode_and_other_parsers_are_accepted() -> None:
    config = parse_config(
        {
            "devices": [
                scale_entry(
                    id="gps",
                    mode="stream",
                    command=None,
                    eol="\n",
                    encoding="latin-1",
                    parse={"json": True},
                    points=[
                        {"id": "lat", "field": "fix.lat"},
                        {"id": "sats", "field": "fix.sats", "type": "int"},
                        {"id": "ok", "type": "bool"},
                    ],
                ),
                scale_entry(
                    id="meter",
                    connection={"port": "/dev/ttyUSB1"},
                    parse={"csv": ["volts", "amps"], "delimiter": ";"},
                    points=[{"id": "volts"}, {"id": "current", "field": "amps", "scale": 0.001}],
                ),
            ]
        }
    )
    gps, meter = config.devices
    driver = config.links[0].driver
    assert driver.describe(gps) == ["stream of lines ending '\\n', parse json, 3 point(s)"]
    assert driver.describe(meter) == ["query 'SI\\r\\n', parse csv, 2 point(s)"]


def test_devices_on_one_port_form_one_link_and_must_agree() -> None:
    config = parse_config({"devices": [scale_entry(id="a"), scale_entry(id="b")]})
    assert len(config.links) == 1
    assert [d.id for d in config.links[0].devices] == ["a", "b"]

    other_baud = scale_entry(id="b", connection={"port": "/dev/ttyACM0", "baudrate": 19200})
    (found,) = problems(scale_entry(id="a"), other_baud)
    assert "serial settings differ" in found


def test_a_stream_has_its_port_to_itself() -> None:
    stream = {"mode": "stream", "command": None}
    (found,) = problems(scale_entry(id="a", **stream), scale_entry(id="b", **stream))
    assert "devices 'a' and 'b' both stream on port /dev/ttyACM0" in found
    (found,) = problems(scale_entry(id="a", **stream), scale_entry(id="b"))
    assert "device 'a' streams on port /dev/ttyACM0, which 'b' also use(s)" in found
