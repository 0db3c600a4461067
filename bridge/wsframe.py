"""A server's WebSocket text frame as bytes, built once and written to many connections.

Frames a server sends are not masked (RFC 6455, section 5.1), so one frame's bytes are
the same for every client that has not negotiated compression. :func:`text_frame` builds
the header as aiohttp's own writer does (``_websocket/writer.py``): FIN and the text
opcode in the first byte, then the payload length in 7 bits, or 126 and 16 bits, or 127
and 64 bits (network order), no mask, no extension bits.
"""

from __future__ import annotations

import struct

_FIN_TEXT = 0x81
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
