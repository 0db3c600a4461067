"""Loading and validating the device file.

Every problem in the file is collected and reported at once, each with its place in the
file (``devices[2].points[0].type``) and, where the YAML tells it, the line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import yaml
from pydantic import ValidationError

from bridge.file_checks import blame_environment, duplicate_ids
from bridge.registry import available_drivers
from bridge.settings import Settings
from bridge.yaml_load import YamlProblem, compose, load_yaml, read_text, shorten
from drivers.base import DeviceConfig, Driver


class ConfigError(Exception):
    """The device file or the settings are unusable; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        """The message for the user: one line per problem, each naming the file."""
        return "\n".join(
            # the environment's mistakes are not the file's
            problem if problem.startswith("environment variable") else f"{self.source}: {problem}"
            for problem in self.problems
        )


@dataclass(frozen=True)
class LinkPlan:
    """What the device file puts on one link: its key, the driver, the devices sharing it.

    The open connection itself is a :class:`drivers.base.Link`, made from this plan.
    """

    key: str
    driver: Driver[Any]
    devices: tuple[DeviceConfig, ...]


@dataclass(frozen=True)
class BridgeConfig:
    """A validated device file: settings, devices in file order, and their links."""

    settings: Settings
    devices: tuple[DeviceConfig, ...]
    links: tuple[LinkPlan, ...]
    warnings: tuple[str, ...] = ()
    """Valid but probably unintended things in the file, one line each, naming the file."""
    source: str | None = None
    """The device file this was read from (what a reload reads again), if any."""

    def device(self, device_id: str) -> DeviceConfig | None:
        """The device with this id, or None."""
        return next((d for d in self.devices if d.id == device_id), None)


def place(location: Sequence[int | str]) -> str:
    """``('devices', 2, 'points', 0, 'type')`` → ``devices[2].points[0].type``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _messages(error: ValidationError, prefix: Sequence[int | str]) -> list[tuple[str, str]]:
    found = []
    for item in error.errors(include_url=False):
        # Pydantic adds the name of the union member or validator kind to the location; it
        # means nothing to someone editing a YAML file.
        location = [
            p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        ]
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        found.append((place([*prefix, *location]), message))
    return found


class _LineFinder:
    """Finds the line of a place in the YAML text, for friendlier messages."""

    def __init__(self, text: str) -> None:
        try:
            self.root: yaml.Node | None = compose(text)
        except YamlProblem:
            self.root = None

    def line(self, location: str) -> int | None:
        node = self.root
        parts = location.replace("[", ".[").split(".")
        for part in filter(None, parts):
            if node is None:
                return None
            if part.startswith("[") and isinstance(node, yaml.SequenceNode):
                index = int(part[1:-1])
                node = node.value[index] if index < len(node.value) else None
            elif isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == part), None)
            else:
                break
        return None if node is None else node.start_mark.line + 1


Problems = list[tuple[str, str]]
"""Found problems: (place in the file, message), in the order they were found."""


def parse_config(data: Any, source: str = "<config>", text: str | None = None) -> BridgeConfig:
    """Validate the parsed device file (and the environment); raise ConfigError for all problems."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, ["(top level): must be a mapping with a 'devices' list"])
    problems: Problems = _unknown_top_level_keys(data)
    warnings: Problems = []
    settings = _parse_settings(data.get("server") or {}, problems)
    drivers = available_drivers()
    devices = _parse_devices(data.get("devices"), drivers, problems, warnings)
    # link checks run on every device that validated: every mistake in one run
    links = _group_links(devices, drivers, problems)
    if problems:
        raise ConfigError(
            source, _with_lines(problems, text) + _with_lines(warnings, text, "warning: ")
        )
    assert settings is not None  # no problems means the settings were parsed
    return BridgeConfig(
        settings=settings,
        devices=tuple(devices),
        links=links,
        warnings=tuple(f"{source}: {line}" for line in _with_lines(warnings, text, "warning: ")),
    )


def _unknown_top_level_keys(data: Mapping[Any, Any]) -> Problems:
    return [
        (place([str(key)]), "unknown key (expected 'server' and 'devices')")
        for key in data
        if key not in ("server", "devices")
    ]


def _parse_settings(server: Any, problems: Problems) -> Settings | None:
    if not isinstance(server, Mapping):
        problems.append(("server", "must be a mapping of settings"))
        return None
    try:
        return Settings(**{str(k): v for k, v in server.items()})
    except ValidationError as exc:
        problems.extend(blame_environment(_messages(exc, ["server"])))
        return None


def _device_list(raw_devices: Any, problems: Problems) -> list[Any]:
    if raw_devices is None:
        problems.append(("devices", "required key is missing: list the devices to poll"))
        return []
    if not isinstance(raw_devices, list):
        problems.append(("devices", "must be a list of devices"))
        return []
    if not raw_devices:
        problems.append(("devices", "is empty: list at least one device"))
    return raw_devices


def _parse_devices(
    raw_devices: Any, drivers: Mapping[str, Driver[Any]], problems: Problems, warnings: Problems
) -> list[DeviceConfig]:
    devices: list[DeviceConfig] = []
    entries = _device_list(raw_devices, problems)
    for index, message in duplicate_ids(entries, "devices"):
        problems.append((place(["devices", index, "id"]), message))
    for index, raw in enumerate(entries):
        where: list[int | str] = ["devices", index]
        if not isinstance(raw, Mapping):
            problems.append((place(where), "must be a mapping"))
            continue
        raw_points = raw.get("points")
        if isinstance(raw_points, list):
            for point_index, message in duplicate_ids(raw_points, "points"):
                problems.append((place([*where, "points", point_index, "id"]), message))
        device = _parse_device(raw, where, drivers, problems, warnings)
        if device is not None:
            devices.append(device)
    return devices


def _parse_device(
    raw: Mapping[Any, Any],
    where: list[int | str],
    drivers: Mapping[str, Driver[Any]],
    problems: Problems,
    warnings: Problems,
) -> DeviceConfig | None:
    name = raw.get("driver")
    driver = drivers.get(name) if isinstance(name, str) else None
    if driver is None:
        known = ", ".join(sorted(drivers)) or "none installed"
        what = "is missing" if name is None else f"{name!r} is not an installed driver"
        problems.append((place([*where, "driver"]), f"{what} (drivers: {known})"))
        return None
    problems.extend((place([*where, *at]), text) for at, text in driver.entry_problems(raw))
    warnings.extend((place([*where, *at]), text) for at, text in driver.entry_warnings(raw))
    try:
        device: DeviceConfig = driver.device_model.model_validate(dict(raw))
    except ValidationError as exc:
        problems.extend(_messages(exc, where))
        return None
    return device


def _group_links(
    devices: list[DeviceConfig], drivers: Mapping[str, Driver[Any]], problems: Problems
) -> tuple[LinkPlan, ...]:
    """Devices that share a connection, in file order; one port may carry one protocol only."""
    grouped: dict[tuple[str, str], list[DeviceConfig]] = {}
    for device in devices:
        key = drivers[device.driver].link_key(device)
        grouped.setdefault((device.driver, key), []).append(device)
    drivers_of_key: dict[str, list[str]] = {}
    for name, key in grouped:
        drivers_of_key.setdefault(key, []).append(name)
    for key, names in drivers_of_key.items():
        if len(names) > 1:
            problems.append(
                (f"link {key}", f"is used by drivers {', '.join(names)}: one port, one protocol")
            )
    links = []
    for (name, key), members in grouped.items():
        problems.extend((f"link {key}", problem) for problem in drivers[name].check_link(members))
        links.append(LinkPlan(key=key, driver=drivers[name], devices=tuple(members)))
    return tuple(links)


def _with_lines(problems: Problems, text: str | None, kind: str = "") -> list[str]:
    """Each problem as ``place (line N): message``, the line found in the YAML text."""
    finder = _LineFinder(text) if text is not None and problems else None
    lines = []
    for location, message in problems:
        line = finder.line(location) if finder else None
        # a message may quote a value of the file: however long that was, it is cut
        where, what = shorten(location, 200), shorten(message, 300)
        lines.append(f"{where}{f' (line {line})' if line else ''}: {kind}{what}")
    return lines


def load_config(path: str | os.PathLike[str]) -> BridgeConfig:
    """Read and validate a device file; raise ConfigError naming the file for any problem.

    However hostile the file, this ends in a ConfigError or a config, quickly and in
    bounded memory (see :mod:`bridge.yaml_load`).
    """
    source = str(path)
    try:
        text = read_text(path)
        data = load_yaml(text)
    except FileNotFoundError:
        raise ConfigError(source, ["no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"cannot be read: {exc}"]) from None
    except YamlProblem as exc:
        raise ConfigError(source, [str(exc)]) from None
    return replace(parse_config(data, source, text), source=source)
