"""Validated ``serial-line`` device and point entries of the device file.

A device names its port (``connection``), how a reading is obtained (``mode``: ``query``
sends ``command`` and reads the reply; ``stream`` listens to lines the device sends by
itself), how lines end (``eol``) and are encoded, and how a line becomes a record
(``parse``: a regular expression with named groups, JSON objects, or CSV columns). Each
point takes one ``field`` of the record (by default the field named like the point), and
a writable point has a ``write`` command template (see :class:`SerialLinePoint`).

Everything that can be checked before talking to the device is checked here, each
problem at its place: a regular expression that does not compile, a point whose field the
regex or the CSV columns cannot give, a command missing in query mode.
"""

from __future__ import annotations

import codecs
import re
import string
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from drivers.base import DeviceConfig
from drivers.scaling import NumericPoint
from drivers.serial_port import SerialConnection

PointType = Literal["float", "int", "bool", "str"]
Mode = Literal["query", "stream"]

#: a value of each point type, to try a write template on when the file is read
WRITE_SAMPLE: dict[str, float | int | bool | str] = {
    "float": 1.5,
    "int": 1,
    "bool": True,
    "str": "x",
}

#: what an ASCII-compatible encoding turns into the same bytes (lines are cut on eol bytes)
_ASCII_SAMPLE = "AZaz09 ,.:;-+\r\n\t"


#: the widest a write template's field may be: a command is one short line
MAX_FIELD_WIDTH = 64


def _check_format_spec(spec: str) -> None:
    """A width or precision of at most MAX_FIELD_WIDTH, and no nested field: a template
    of ``{value:999999999}`` would build a gigabyte line at every write."""
    if "{" in spec:
        raise ValueError("may not nest a field in a format ({value:{value}})")
    for digits in re.findall(r"\d+", spec):
        if len(digits) > 3 or int(digits) > MAX_FIELD_WIDTH:
            raise ValueError(
                f"format {spec[:20]!r}: widths and precisions are at most {MAX_FIELD_WIDTH}"
            )


def _problems(title: str, found: list[tuple[tuple[str | int, ...], str, Any]]) -> None:
    """Raise every (place, message, input) found, each at its own place in the entry."""
    if found:
        raise ValidationError.from_exception_data(
            title,
            [
                InitErrorDetails(
                    type=PydanticCustomError("serial_line", "{message}", {"message": message}),
                    loc=loc,
                    input=value,
                )
                for loc, message, value in found
            ],
        )


def _no_escaped_control(text: str) -> str:
    # YAML turns "\r\n" into control characters only in double quotes; a plain or
    # single-quoted \r\n reaches us as a backslash and a letter, which no device expects.
    for escape in ("\\r", "\\n"):
        if escape in text:
            raise ValueError(
                f"{text!r} holds a backslash followed by {escape[1]!r}: write it in double "
                f'quotes ("{text}") so that YAML turns it into a control character'
            )
    return text


class LineParse(BaseModel):
    """How a line becomes a record: exactly one of ``regex``, ``json`` or ``csv``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regex: re.Pattern[str] | None = None
    json_: bool | None = Field(default=None, alias="json", strict=True)
    csv: tuple[str, ...] | None = Field(default=None, min_length=1)
    delimiter: str = Field(default=",", min_length=1, max_length=1)

    @field_validator("regex", mode="before")
    @classmethod
    def _compile(cls, value: Any) -> Any:
        if value is None or isinstance(value, re.Pattern):
            return value
        if not isinstance(value, str):
            raise ValueError("must be a regular expression (a string)")
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if not pattern.groupindex:
            raise ValueError(
                "has no named group: name the part that holds a value, e.g. "
                "(?P<weight>-?\\d+(\\.\\d+)?)"
            )
        return pattern

    @field_validator("csv")
    @classmethod
    def _columns(cls, columns: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if columns is None:
            return None
        seen: set[str] = set()
        for column in columns:
            if not column:
                raise ValueError("a column name must not be empty")
            if column in seen:
                raise ValueError(f"column {column!r} is named twice")
            seen.add(column)
        return columns

    @model_validator(mode="after")
    def _one_kind(self) -> LineParse:
        if self.json_ is False:
            raise ValueError("json: false parses nothing: write json: true, or give regex or csv")
        given = [
            name
            for name, value in (("regex", self.regex), ("json", self.json_), ("csv", self.csv))
            if value is not None
        ]
        if not given:
            raise ValueError("give one of regex: PATTERN, json: true or csv: [COLUMN, ...]")
        if len(given) > 1:
            raise ValueError(f"give only one of regex, json and csv, not {' and '.join(given)}")
        if "delimiter" in self.model_fields_set and self.csv is None:
            raise ValueError("delimiter applies to csv only")
        return self

    @property
    def kind(self) -> Literal["regex", "json", "csv"]:
        """Which parser this is."""
        if self.regex is not None:
            return "regex"
        if self.csv is not None:
            return "csv"
        return "json"

    @property
    def fields(self) -> tuple[str, ...] | None:
        """The fields every record has (regex groups, CSV columns), or None if not known."""
        if self.regex is not None:
            return tuple(self.regex.groupindex)
        return self.csv


class SerialLinePoint(NumericPoint):
    """One value taken from a field of the record a line gives; writable through a command.

    A writable point has ``write``, the command that sets it: a template in Python's format
    syntax whose only field is ``{value}``, terminator included (``"SP {value:.1f}\\r\\n"``).
    ``{value}`` is the value in the device's own terms, the inverse of ``scale`` and
    ``offset`` (a whole number for an ``int`` point), so the command speaks the units the
    device's replies do. ``min`` and ``max`` bound what may be written to a number.
    """

    type: PointType = "float"
    field: str | None = Field(default=None, min_length=1)
    write: str | None = Field(default=None, min_length=1)

    @field_validator("write")
    @classmethod
    def _template(cls, text: str | None) -> str | None:
        if text is None:
            return None
        _no_escaped_control(text)
        try:
            parsed = [(name, spec) for _, name, spec, _ in string.Formatter().parse(text)]
        except ValueError as exc:
            raise ValueError(f"is not a valid template: {exc}") from None
        fields = [name for name, _ in parsed if name is not None]
        for _, spec in parsed:
            _check_format_spec(spec or "")
        if not fields:
            raise ValueError(
                'has no {value}: write where the value goes, e.g. "SP {value:.1f}\\r\\n" '
                "(a literal brace is written {{ or }})"
            )
        for name in fields:
            if name != "value":
                raise ValueError(
                    f"may only use the field {{value}}, not {{{name}}} "
                    "(a literal brace is written {{ or }})"
                )
        return text

    @model_validator(mode="after")
    def _consistent(self) -> SerialLinePoint:
        if self.writable and self.write is None:
            raise ValueError(
                "serial-line points are written through a command: writable: true needs "
                'write, a template like "SP {value:.1f}\\r\\n"'
            )
        if self.write is not None and not self.writable:
            raise ValueError("write is a command template for a writable point: set writable: true")
        if self.type in ("bool", "str") and self.model_fields_set & {"scale", "offset"}:
            raise ValueError(f"scale and offset apply to numbers, not to a {self.type}")
        if self.type in ("bool", "str") and self.model_fields_set & {"min", "max"}:
            raise ValueError(f"min and max apply to numbers, not to a {self.type}")
        if self.write is not None:
            try:
                self.write.format(value=WRITE_SAMPLE[self.type])
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                raise ValueError(
                    f"write {self.write!r} cannot format a {self.type} value: {exc}"
                ) from None
        return self

    @property
    def source(self) -> str:
        """The record field holding this point's value."""
        return self.field if self.field is not None else self.id


class SerialLineDevice(DeviceConfig):
    """A ``serial-line`` device entry."""

    driver: Literal["serial-line"]
    connection: SerialConnection
    mode: Mode = "query"
    command: str | None = Field(default=None, min_length=1)
    eol: str = Field(default="\r\n", min_length=1, max_length=8)
    encoding: str = "ascii"
    max_line: int = Field(default=256, ge=1, le=65536)
    parse: LineParse
    points: Sequence[SerialLinePoint] = Field(min_length=1)

    @field_validator("command", "eol")
    @classmethod
    def _plain_control_characters(cls, text: str | None) -> str | None:
        return None if text is None else _no_escaped_control(text)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, name: str) -> str:
        try:
            codecs.lookup(name)
        except LookupError:
            raise ValueError(
                f"{name!r} is not a known encoding (ascii, latin-1, utf-8, ...)"
            ) from None
        try:
            compatible = _ASCII_SAMPLE.encode(name) == _ASCII_SAMPLE.encode("ascii")
        except (LookupError, UnicodeError):
            compatible = False
        if not compatible:
            raise ValueError(
                f"{name!r} is not an ASCII-compatible text encoding (ascii, latin-1, utf-8, "
                "cp1252, ...): lines are cut where the eol bytes are"
            )
        return name

    @model_validator(mode="after")
    def _consistent(self) -> SerialLineDevice:
        found: list[tuple[tuple[str | int, ...], str, Any]] = []
        if self.mode == "query" and self.command is None:
            found.append(
                (
                    ("command",),
                    'is required in query mode: the text that asks for a reading, e.g. "SI\\r\\n"',
                    None,
                )
            )
        if self.mode == "stream" and self.command is not None:
            found.append(
                (
                    ("command",),
                    "is not used in stream mode (the device sends lines by itself): "
                    "remove it, or use mode: query",
                    self.command,
                )
            )
        for name in ("command", "eol"):
            text = getattr(self, name)
            if text is None:
                continue
            try:
                text.encode(self.encoding)
            except UnicodeEncodeError:
                found.append(((name,), f"cannot be written in encoding {self.encoding!r}", text))
        for index, point in enumerate(self.points):
            if point.write is None:
                continue
            try:
                point.write.format(value=WRITE_SAMPLE[point.type]).encode(self.encoding)
            except UnicodeEncodeError:
                found.append(
                    (
                        ("points", index, "write"),
                        f"cannot be written in encoding {self.encoding!r}",
                        point.write,
                    )
                )
        known = self.parse.fields
        if known is not None:
            what = "named group of the regex" if self.parse.kind == "regex" else "csv column"
            for index, point in enumerate(self.points):
                if point.source in known:
                    continue
                listed = ", ".join(known)
                if point.field is not None:
                    found.append(
                        (
                            ("points", index, "field"),
                            f"{point.field!r} is not a {what} ({listed})",
                            point.field,
                        )
                    )
                else:
                    found.append(
                        (
                            ("points", index, "id"),
                            f"no {what} is named {point.id!r} ({listed}): "
                            "set field to the one that holds this point",
                            point.id,
                        )
                    )
        _problems(type(self).__name__, found)
        return self

    @property
    def command_bytes(self) -> bytes:
        """The command as sent (empty in stream mode)."""
        return (self.command or "").encode(self.encoding)

    @property
    def eol_bytes(self) -> bytes:
        """The line terminator as received."""
        return self.eol.encode(self.encoding)
