"""Modbus drivers: configuration, request planning, decoding, and the TCP transport."""
