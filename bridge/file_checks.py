"""Checks of the device file that look across entries, or at the file as written.

Pydantic validates one entry at a time and stops at the first broken part of it; these run
beside it, so that every mistake is reported in one run: duplicate ids whatever else is
wrong, a setting from the environment blamed on the environment, and the driver's own
warnings about entries that are valid but probably not what was meant.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def duplicate_ids(items: Sequence[Any], what: str) -> list[tuple[int, str]]:
    """``(index, message)`` for every item whose ``id`` an earlier item already has."""
    seen: dict[str, int] = {}
    found = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        ident = item.get("id")
        if not isinstance(ident, str):
            continue
        if ident in seen:
            found.append((index, f"{ident!r} is used by {what}[{seen[ident]}] too"))
        else:
            seen[ident] = index
    return found


def environment_variable(field: str) -> str | None:
    """The ``BRIDGE_*`` variable that sets this setting, if it is set."""
    name = f"BRIDGE_{field.upper()}"
    return next((key for key in os.environ if key.upper() == name), None)


def blame_environment(problems: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Settings problems (``server.<key>``) re-placed on the environment variable that set
    the value, where one did: the environment wins over the file, so it is the culprit."""
    found = []
    for location, message in problems:
        field = location.removeprefix("server.").split(".")[0].split("[")[0]
        variable = environment_variable(field) if location.startswith("server.") else None
        found.append((f"environment variable {variable}" if variable else location, message))
    return found
