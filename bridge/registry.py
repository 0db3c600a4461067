"""Finding driver families through the ``device_bridge.drivers`` entry-point group."""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from drivers.base import Driver

GROUP = "device_bridge.drivers"

log = logging.getLogger(__name__)


class DriverLoadError(Exception):
    """An entry point names something that cannot be loaded as a driver."""


@cache
def available_drivers() -> dict[str, Driver[Any]]:
    """Every installed driver by name, built-in ones included, each instantiated once.

    A third-party package adds a driver by declaring one entry point in this group whose
    name is the driver name used in device files and whose object is a :class:`Driver`
    subclass.
    """
    drivers: dict[str, Driver[Any]] = {}
    for entry in entry_points(group=GROUP):
        try:
            driver_class = entry.load()
        except Exception as exc:  # a broken plug-in must not take the others down
            log.error("driver %r (%s) cannot be loaded: %s", entry.name, entry.value, exc)
            continue
        if not (isinstance(driver_class, type) and issubclass(driver_class, Driver)):
            log.error("driver %r (%s) is not a Driver subclass", entry.name, entry.value)
            continue
        drivers[entry.name] = driver_class()
    return drivers
