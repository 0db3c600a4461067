"""Replies checked against their requests (drivers/modbus/pdu.py): known vectors."""

from __future__ import annotations

import pytest

from drivers.modbus.pdu import (
    ModbusRefusal,
    ReplyMismatch,
    read_reply,
    write_coil_request,
    write_registers_request,
    write_reply,
)


def test_a_register_reply_gives_its_registers() -> None:
    assert read_reply(3, 2, bytes.fromhex("03 04 00 01 ff fe")) == [1, 0xFFFE]


def test_a_bit_reply_gives_exactly_the_bits_asked_for() -> None:
    assert read_reply(1, 3, bytes.fromhex("01 01 05")) == [True, False, True]


@pytest.mark.parametrize(
    ("function", "count", "reply", "says"),
    [
        (3, 2, "04 04 00 01 00 02", "function 4 to a request of function 3"),
        (3, 2, "03 05 00 01 00 02", "byte count 5"),
        (3, 2, "03 06 00 01 00 02 00 03", "byte count 6"),
        (3, 2, "03 04 00 01 00", "3 data byte(s)"),
        (1, 8, "01 02 ff", "byte count 2"),
        (1, 8, "01 01 ff 00", "2 data byte(s)"),
        (3, 2, "84 02", "function 132"),
        (3, 2, "83 02 00", "exception reply of 3 bytes"),
        (3, 2, "03", "1 byte(s)"),
        (3, 2, "", "empty"),
    ],
)
def test_a_reply_that_does_not_answer_the_read_is_a_mismatch(
    function: int, count: int, reply: str, says: str
) -> None:
    with pytest.raises(ReplyMismatch, match=says.replace("(", r"\(").replace(")", r"\)")):
        read_reply(function, count, bytes.fromhex(reply))


def test_an_exception_reply_to_the_request_is_a_refusal() -> None:
    with pytest.raises(ModbusRefusal) as caught:
        read_reply(3, 2, bytes.fromhex("83 02"))
    assert caught.value.code == 2


def test_writes_are_checked_against_their_echo() -> None:
    single = write_registers_request(20, [7])
    write_reply(single, single)
    several = write_registers_request(20, [7, 8])
    write_reply(several, several[:5])
    coil = write_coil_request(3, True)
    write_reply(coil, coil)
    for request, reply in [
        (single, bytes.fromhex("06 00 15 00 07")),  # another address
        (single, bytes.fromhex("06 00 14 00 08")),  # another value
        (several, bytes.fromhex("10 00 14 00 03")),  # another quantity
        (coil, bytes.fromhex("05 00 03 00 00")),  # the coil off, not on
        (coil, bytes.fromhex("0f 00 03 ff 00")),  # another function
    ]:
        with pytest.raises(ReplyMismatch):
            write_reply(request, reply)
