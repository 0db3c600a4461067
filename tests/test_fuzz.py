"""Property tests for every function that turns bytes or text from outside into values:
RTU framing, Modbus replies and the codec, the line framing and parsers, the device file
loader. Whatever comes in, only values, failures of a point, or the project's own error
types come out, never another exception.

``FUZZ_EXAMPLES`` sets the examples per property (a few hundred in the suite);
``bench/fuzz.py`` runs the same properties for longer and prints the figures that
docs/reliability.md quotes.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.config import BridgeConfig, ConfigError, parse_config
from bridge.yaml_load import YamlProblem, load_yaml
from drivers.base import PointFailure
from drivers.modbus.blocks import decode_block
from drivers.modbus.config import ModbusPoint
from drivers.modbus.pdu import ModbusRefusal, ReplyMismatch, read_reply, write_reply
from drivers.modbus.planner import plan_reads
from drivers.modbus.rtu_frame import find_reply, frame, reply_size
from drivers.serial_line.config import LineParse, SerialLinePoint
from drivers.serial_line.framing import LineSplitter
from drivers.serial_line.parsers import parse_line, record_values

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FUNCTIONS = st.sampled_from([1, 2, 3, 4, 5, 6, 15, 16])


# ------------------------------------------------------------------------ Modbus replies


@fuzz
@given(st.binary(max_size=300), st.integers(1, 247), FUNCTIONS, st.integers(1, 125))
def test_rtu_framing_finds_a_reply_or_says_why(
    buffer: bytes, unit: int, function: int, count: int
) -> None:
    reply = find_reply(buffer, unit, function, reply_size(function, count))
    if reply.pdu is not None:
        assert reply.pdu[0] in (function, function | 0x80)
    else:
        assert reply.problem is not None or not buffer


@fuzz
@given(st.binary(max_size=40), st.integers(1, 247), st.integers(1, 125), st.binary(max_size=40))
def test_a_good_rtu_reply_is_found_after_any_noise(
    noise: bytes, unit: int, count: int, tail: bytes
) -> None:
    data = bytes(2 * count)
    pdu = bytes((3, 2 * count)) + data
    found = find_reply(noise + frame(unit, pdu) + tail, unit, 3, reply_size(3, count))
    assert found.pdu is not None  # this reply, or one hidden in the noise: never none


@fuzz
@given(st.sampled_from([1, 2, 3, 4]), st.integers(1, 125), st.binary(max_size=300))
def test_a_read_reply_is_its_values_or_a_device_error(
    function: int, count: int, reply: bytes
) -> None:
    try:
        values = read_reply(function, count, reply)
    except (ReplyMismatch, ModbusRefusal):
        return
    assert len(values) == count
    assert all(0 <= int(v) <= 0xFFFF for v in values)


@fuzz
@given(st.sampled_from([5, 6, 15, 16]), st.binary(min_size=4, max_size=10), st.binary(max_size=12))
def test_a_write_reply_is_an_echo_or_a_device_error(
    function: int, body: bytes, reply: bytes
) -> None:
    try:
        write_reply(bytes((function,)) + body, reply)
    except (ReplyMismatch, ModbusRefusal):
        return
    assert reply[0] == function


CODEC_POINTS = [
    ModbusPoint.model_validate(p)
    for p in [
        {"id": "i16", "table": "holding", "address": 0, "type": "int16", "scale": 0.1},
        {"id": "u32", "table": "holding", "address": 1, "type": "uint32", "word_order": "little"},
        {
            "id": "f32",
            "table": "holding",
            "address": 3,
            "type": "float32",
            "byte_order": "little",
            "offset": 5,
        },
        {"id": "f64", "table": "holding", "address": 5, "type": "float64"},
        {"id": "i64", "table": "holding", "address": 9, "type": "int64", "scale": 1e-300},
        {"id": "bit", "table": "holding", "address": 13, "type": "bool", "bit": 15},
        {"id": "s", "table": "holding", "address": 14, "type": "string", "length": 4},
    ]
]
(CODEC_BLOCK,) = plan_reads(CODEC_POINTS, max_gap=10)


@fuzz
@given(st.lists(st.integers(0, 0xFFFF), max_size=24))
def test_the_codec_turns_any_registers_into_values_or_point_failures(registers: list[int]) -> None:
    for _, value in decode_block(CODEC_BLOCK, registers):
        if isinstance(value, float):
            assert math.isfinite(value)
        assert isinstance(value, (int, float, bool, str, PointFailure))


# ------------------------------------------------------------------------ line instruments

PARSES = [
    LineParse.model_validate({"regex": r"^S S\s+(?P<weight>-?\d+(\.\d+)?) g"}),
    LineParse.model_validate({"json": True}),
    LineParse.model_validate({"csv": ["weight", "temperature", "stable"]}),
    LineParse.model_validate({"csv": ["weight", "temperature"], "delimiter": ";"}),
]
LINE_POINTS = [
    SerialLinePoint.model_validate(p)
    for p in [
        {"id": "weight", "scale": 0.001, "offset": 1},
        {"id": "temperature", "type": "int"},
        {"id": "stable", "type": "bool"},
        {"id": "raw", "field": "weight", "type": "str"},
        {"id": "plain", "field": "weight"},
    ]
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | st.integers(min_value=10**300, max_value=10**400),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["weight", "temperature", "stable", "x"]), children,
                      max_size=4),
    max_leaves=20,
)  # fmt: skip
LINES = (
    st.text(max_size=120)
    | JSON_VALUES.map(lambda v: json.dumps(v))
    | st.lists(
        st.text(alphabet='0123456789.-+eE, "nainf', max_size=12), min_size=1, max_size=4
    ).map(",".join)
)


@fuzz
@given(st.sampled_from(PARSES), LINES)
def test_a_line_is_a_record_of_values_or_point_failures(parse: LineParse, line: str) -> None:
    record = parse_line(parse, line)
    if record is None:
        return
    for value in record_values(LINE_POINTS, record).values():
        assert isinstance(value, (int, float, bool, str, PointFailure))
        if isinstance(value, float):
            assert math.isfinite(value)
        if isinstance(value, PointFailure):
            assert len(value.error) < 300


@fuzz
@given(
    st.sampled_from([b"\r\n", b"\n", b"\x03"]),
    st.integers(1, 40),
    st.lists(st.binary(max_size=60), max_size=8),
)
def test_line_framing_cuts_only_whole_lines_of_bounded_length(
    eol: bytes, max_line: int, chunks: list[bytes]
) -> None:
    splitter = LineSplitter(eol, max_line)
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        lines, overlong = splitter.take(buffer)
        assert overlong >= 0
        for line in lines:
            assert eol not in line
            assert len(line) <= max_line
        assert len(buffer) <= max_line + 2 * len(eol)


# ------------------------------------------------------------------------ device files

YAML_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["modbus-tcp", "modbus-rtu", "serial-line", "holding", "float32",
                       "127.0.0.1", "/dev/ttyUSB0", "40001", "SP {value:.1f}\r\n"])
)  # fmt: skip
KEYS = st.sampled_from(
    ["devices", "server", "id", "driver", "connection", "host", "port", "unit", "points",
     "address", "type", "table", "interval", "timeout", "parse", "regex", "json", "csv",
     "command", "write", "writable", "bit", "length", "scale", "mode", "max_subscribers"]
)  # fmt: skip
DOCUMENTS = st.recursive(
    YAML_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=30,
)


def _load(text: str) -> BridgeConfig | None:
    try:
        return parse_config(load_yaml(text), "<fuzz>", text)
    except (YamlProblem, ConfigError):
        return None


@fuzz
@given(st.text(max_size=400))
def test_any_text_is_a_device_file_or_a_config_error(text: str) -> None:
    _load(text)


@fuzz
@given(DOCUMENTS)
def test_any_yaml_document_is_a_device_file_or_a_config_error(document: Any) -> None:
    _load(yaml.safe_dump({"devices": document} if not isinstance(document, dict) else document))


@fuzz
@given(st.text(alphabet="&*ab[]{}:,- !\n'\"<>%|#0123456789", max_size=200))
def test_yaml_punctuation_is_a_device_file_or_a_config_error(text: str) -> None:
    _load(text)
