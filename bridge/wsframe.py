"""A server's WebSocket frames as bytes: text frames built once and written to many
connections, and the ping and pong a connection the bridge writes itself sends.

Frames a server sends are not masked (RFC 6455, section 5.1), so one frame's bytes are
the same for every client that has not negotiated compression. :func:`text_frame` builds
the header as aiohttp's own writer does (``_websocket/writer.py``): FIN and the text
opcode in the first byte, then the payload length in 7 bits, or 126 and 16 bits, or 127
and 64 bits (network order), no mask, no extension bits.
"""

from __future__ import annotations

import struct

_FIN_TEXT = 0x81
_FIN_PING = 0x89
_FIN_PONG = 0x8A
#: a control frame's payload is at most this long (RFC 6455, section 5.5)
CONTROL_PAYLOAD = 125
_SHORT = struct.Struct("!BB").pack
_MEDIUM = struct.Struct("!BBH").pack
_LONG = struct.Struct("!BBQ").pack


def text_header(length: int) -> bytes:
    """The header of an unmasked, uncompressed, final text frame of ``length`` bytes."""
    if length < 126:
        return _SHORT(_FIN_TEXT, length)
    if length < 65536:
        return _MEDIUM(_FIN_TEXT, 126, length)
    return _LONG(_FIN_TEXT, 127, length)


def text_frame(payload: bytes) -> bytes:
    """The whole frame (header and payload) carrying UTF-8 ``payload`` as one message."""
    return text_header(len(payload)) + payload


def _control_frame(first: int, payload: bytes) -> bytes:
    if len(payload) > CONTROL_PAYLOAD:
        raise ValueError(f"a control frame carries at most {CONTROL_PAYLOAD} bytes")
    return _SHORT(first, len(payload)) + payload


def ping_frame(payload: bytes = b"") -> bytes:
    """A ping (the peer must answer with a pong carrying the same payload)."""
    return _control_frame(_FIN_PING, payload)


def pong_frame(payload: bytes) -> bytes:
    """The answer to a ping that carried ``payload``."""
    return _control_frame(_FIN_PONG, payload)
