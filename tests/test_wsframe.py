"""The WebSocket frames the bridge writes itself: the text frame the hub sends straight to
idle connections, and the stream's pings and pongs (RFC 6455, 5.2 and 5.5)."""

from __future__ import annotations

import pytest

from bridge.wsframe import CONTROL_PAYLOAD, ping_frame, pong_frame, text_frame, text_header


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        (2**32 + 5, b"\x81\x7f\x00\x00\x00\x01\x00\x00\x00\x05"),
    ],
)
def test_the_header_holds_fin_text_and_the_length_in_7_16_or_64_bits_unmasked(
    length: int, header: bytes
) -> None:
    assert text_header(length) == header


def test_the_frame_is_the_header_then_the_payload_unchanged() -> None:
    payload = b'{"type":"readings","readings":[]}' * 5
    assert text_frame(payload) == b"\x81\x7e\x00\xa5" + payload


def test_a_ping_and_a_pong_are_final_control_frames_carrying_their_payload() -> None:
    assert ping_frame() == b"\x89\x00"
    assert pong_frame(b"17") == b"\x8a\x0217"
    assert pong_frame(b"x" * CONTROL_PAYLOAD) == b"\x8a\x7d" + b"x" * CONTROL_PAYLOAD


def test_a_control_frame_never_carries_more_than_125_bytes() -> None:
    with pytest.raises(ValueError, match="125"):
        pong_frame(b"x" * (CONTROL_PAYLOAD + 1))
