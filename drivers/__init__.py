"""Driver families: each turns one kind of device link into readings.

The bridge finds drivers through the entry-point group ``device_bridge.drivers``;
see :mod:`drivers.base` for the contract a driver fulfils.
"""
