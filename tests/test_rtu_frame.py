"""RTU framing: CRC vectors, request frames, and finding the reply among stray bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modbus.pdu import read_request
from drivers.modbus.rtu_frame import crc16, find_reply, frame, reply_size


def test_crc_known_vectors() -> None:
    # the read of holding register 0 of unit 1 that every Modbus manual prints
    assert frame(1, read_request(3, 0, 1)).hex(" ") == "01 03 00 00 00 01 84 0a"
    assert frame(17, read_request(3, 107, 3)).hex(" ") == "11 03 00 6b 00 03 76 87"
    assert crc16(b"123456789") == 0x4B37  # the CRC-16/MODBUS check value


@pytest.mark.parametrize(
    ("function", "count", "size"),
    [(1, 1, 6), (1, 8, 6), (1, 9, 7), (2, 2000, 255), (3, 1, 7), (4, 125, 255), (6, 1, 8),
     (16, 10, 8)],
)  # fmt: skip
def test_reply_size(function: int, count: int, size: int) -> None:
    assert reply_size(function, count) == size


REPLY = frame(3, bytes([4, 4, 0x00, 0x00, 0x30, 0x39]))  # unit 3, input regs [0, 12345]


def test_a_clean_reply_is_found() -> None:
    found = find_reply(REPLY, 3, 4, reply_size(4, 2))
    assert found.pdu == bytes([4, 4, 0, 0, 0x30, 0x39])


def test_stray_bytes_before_the_reply_are_skipped() -> None:
    # noise at turnaround, including a byte equal to the unit id and the function code
    noisy = bytes([0x00, 0xFF, 0x03, 0x04, 0x7E]) + REPLY
    assert find_reply(noisy, 3, 4, reply_size(4, 2)).pdu == bytes([4, 4, 0, 0, 0x30, 0x39])


def test_a_bad_crc_is_never_a_reply() -> None:
    corrupt = REPLY[:-1] + bytes([REPLY[-1] ^ 0x01])
    found = find_reply(corrupt, 3, 4, reply_size(4, 2))
    assert found.pdu is None
    assert found.problem == "a reply with a bad CRC"
    assert not found.foreign


def test_another_units_reply_is_not_taken() -> None:
    other = frame(4, bytes([4, 4, 0, 0, 0, 1]))
    found = find_reply(other, 3, 4, reply_size(4, 2))
    assert found.pdu is None
    assert found.problem == "a reply from unit 4 instead of unit 3"
    assert found.foreign
    # ... but is skipped when the right one follows (a late reply, then ours)
    assert find_reply(other + REPLY, 3, 4, reply_size(4, 2)).pdu == REPLY[1:-2]


def test_a_reply_of_another_size_is_not_taken() -> None:
    # a late reply to a read of 1 register while we wait for 2
    late = frame(3, bytes([4, 2, 0, 7]))
    assert find_reply(late, 3, 4, reply_size(4, 2)).pdu is None
    assert find_reply(late + REPLY, 3, 4, reply_size(4, 2)).pdu == REPLY[1:-2]


def test_exception_replies_and_incomplete_frames() -> None:
    refusal = frame(3, bytes([0x84, 0x02]))
    assert find_reply(refusal, 3, 4, reply_size(4, 2)).pdu == bytes([0x84, 0x02])
    half = REPLY[:5]
    found = find_reply(half, 3, 4, reply_size(4, 2))
    assert found.pdu is None
    assert found.problem == "5 byte(s) that are not a reply"
    assert find_reply(b"", 3, 4, 9).problem is None


def test_another_units_reply_is_not_foreign_once_the_asked_unit_sent_something_wrong() -> None:
    other = frame(4, bytes([4, 4, 0, 0, 0, 1]))
    garbled = REPLY[:-1] + bytes([REPLY[-1] ^ 0x01])  # unit 3's own reply, a bit flipped
    found = find_reply(other + garbled, 3, 4, reply_size(4, 2))
    assert found.pdu is None
    assert found.problem == "a reply with a bad CRC"  # unit 3 answered, though not usably
    assert not found.foreign


def test_what_the_bytes_inside_another_units_frame_look_like_is_no_problem() -> None:
    # unit 1's reply holds the bytes 02 03 02: unit 2's function 3, two bytes
    other = frame(1, bytes([3, 2, 0x03, 0x02]))
    found = find_reply(other + bytes(3), 2, 3, reply_size(3, 1))
    assert found.foreign
    assert found.problem == "a reply from unit 1 instead of unit 2"


#: whole, good reply frames of units other than 3 (reads, writes and exceptions)
OTHER_UNITS_FRAMES = st.builds(
    frame,
    st.integers(1, 247).filter(lambda u: u != 3),
    st.one_of(
        st.builds(lambda f, data: bytes([f, len(data)]) + data,
                  st.sampled_from([1, 2, 3, 4]), st.binary(min_size=1, max_size=20)),
        st.builds(lambda f, rest: bytes([f]) + rest,
                  st.sampled_from([5, 6, 15, 16]), st.binary(min_size=4, max_size=4)),
        st.builds(lambda f, code: bytes([f | 0x80, code]), st.integers(1, 16), st.integers(1, 11)),
    ),
)  # fmt: skip


@given(st.lists(st.one_of(OTHER_UNITS_FRAMES, st.binary(max_size=8)), max_size=6))
def test_whatever_comes_before_it_the_asked_units_reply_is_found(parts: list[bytes]) -> None:
    found = find_reply(b"".join(parts) + REPLY, 3, 4, reply_size(4, 2))
    assert found.pdu == REPLY[1:-2]


@given(st.lists(OTHER_UNITS_FRAMES, min_size=1, max_size=6))
def test_only_other_units_frames_are_foreign_and_never_a_reply(frames: list[bytes]) -> None:
    found = find_reply(b"".join(frames), 3, 4, reply_size(4, 2))
    assert found.pdu is None
    assert found.foreign
