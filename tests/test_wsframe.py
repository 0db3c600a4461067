"""The WebSocket text frame the hub writes straight to idle connections (RFC 6455, 5.2)."""

from __future__ import annotations

import pytest

from bridge.wsframe import text_frame, text_header


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
