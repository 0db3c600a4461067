"""device-bridge: polls devices through pluggable drivers and serves their readings."""

__version__ = "0.1.0"
