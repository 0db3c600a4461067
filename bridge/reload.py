"""Reloading the device file into a running bridge (``SIGHUP``, ``POST /api/v1/reload``).

A file with errors is refused whole: :func:`reload` raises ConfigError before anything
changes. A good file is applied as a difference, link by link (a link is one connection
and the devices on it, :class:`~bridge.config.LinkPlan`):

- a link whose devices are all defined as before keeps its poller, connection and
  schedule untouched;
- any other link of the old file is stopped and, if the new file still has it, started
  afresh with the new devices (one reconnect);
- a device defined as before keeps its runtime (status, statistics) even when its link is
  restarted, and the store keeps every point defined as before (latest reading, history,
  ``seq``); a redefined point starts unread;
- a device no longer in the file is dropped, and subscribers get a ``removed`` status
  frame for it; an added device starts as a new one would.

The store's ``boot`` and ``seq`` go on, so streams stay connected and resume as before.
Server settings are not reloaded: the ones that differ are reported as needing a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bridge import wire
from bridge.config import BridgeConfig, LinkPlan, load_config
from bridge.poller import DeviceRuntime

if TYPE_CHECKING:
    from bridge.service import Bridge

log = logging.getLogger(__name__)

REMOVED = "removed"


@dataclass
class Reloaded:
    """What a reload did, by device id (and the settings that need a restart)."""

    unchanged: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The answer of ``POST /api/v1/reload``."""
        return {"reloaded": True, **self.__dict__}


def _same_link(old: LinkPlan, new: LinkPlan) -> bool:
    return old.driver.name == new.driver.name and old.devices == new.devices


def differences(old: BridgeConfig, new: BridgeConfig) -> Reloaded:
    """Which devices a reload from ``old`` to ``new`` keeps, changes, adds and removes."""
    result = Reloaded()
    for device in new.devices:
        before = old.device(device.id)
        if before is None:
            result.added.append(device.id)
        elif before == device:
            result.unchanged.append(device.id)
        else:
            result.changed.append(device.id)
    result.removed = [d.id for d in old.devices if new.device(d.id) is None]
    result.restart_needed = sorted(
        name
        for name in type(old.settings).model_fields
        if getattr(old.settings, name) != getattr(new.settings, name)
    )
    return result


async def reload(bridge: Bridge, source: str) -> Reloaded:
    """Re-read the device file at ``source`` and apply it; ConfigError changes nothing."""
    async with bridge.reload_lock:
        new = load_config(source)
        old = bridge.config
        old_devices = {d.id: d for d in old.devices}
        result = differences(old, new)
        old_links = {link.key: link for link in old.links}
        new_links = {link.key: link for link in new.links}
        kept = {key for key, link in new_links.items()
                if key in old_links and _same_link(old_links[key], link)}  # fmt: skip
        await bridge.stop_pollers([p for p in bridge.pollers if p.key not in kept])
        bridge.store.set_devices(new.devices, bridge.settings.history)
        runtimes = bridge.devices
        bridge.devices = {
            d.id: runtimes[d.id] if d.id in result.unchanged else DeviceRuntime(d)
            for d in new.devices
        }
        for device_id in result.removed:
            bridge.forget(device_id)
        bridge.config = BridgeConfig(
            settings=bridge.settings, devices=new.devices, links=new.links,
            warnings=new.warnings, source=source,
        )  # fmt: skip
        for key, link in new_links.items():
            if key not in kept:
                bridge.start_poller(bridge.add_poller(link))
        for device_id in result.removed:
            bridge.hub.publish_status(device_id, wire.status(device_id, REMOVED, None, None, None))
        if bridge.north is not None:
            # a redefined device is born again upstream, with its new points
            gone = [*result.removed, *result.changed]
            bridge.north.devices_changed(
                [*result.changed, *result.added],
                {d: [p.id for p in old_devices[d].points] for d in gone},
            )
        for warning in new.warnings:
            log.warning("%s", warning)
        log.info(
            "reloaded %s: %d unchanged, %d changed, %d added, %d removed%s",
            source, len(result.unchanged), len(result.changed), len(result.added),
            len(result.removed),
            f"; restart to apply server settings: {', '.join(result.restart_needed)}"
            if result.restart_needed else "",
        )  # fmt: skip
        return result
