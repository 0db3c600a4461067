"""The subscription filter: which points a request or a stream client wants.

One rule, used by the store (which points a snapshot or a resume covers), the hub (which
readings a subscriber gets) and the REST routes: no names means every point; otherwise a
point is wanted if its device is named, or if it is named itself as ``device/point``.
"""

from __future__ import annotations

from collections.abc import Iterable


class Filter:
    """Device ids and ``device/point`` names; both empty means everything."""

    __slots__ = ("_points_of", "devices", "everything", "points")

    def __init__(self, devices: Iterable[str] = (), points: Iterable[str] = ()) -> None:
        self.devices = frozenset(devices)
        self.points = frozenset(points)
        self.everything = not self.devices and not self.points
        points_of: dict[str, set[str]] = {}
        for name in self.points:
            device, _, point = name.partition("/")
            points_of.setdefault(device, set()).add(point)
        # by device, so that matching a reading builds no "device/point" string
        self._points_of = {device: frozenset(points) for device, points in points_of.items()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Filter):
            return NotImplemented
        return self.devices == other.devices and self.points == other.points

    def __hash__(self) -> int:
        return hash((self.devices, self.points))

    def __repr__(self) -> str:
        return f"Filter(devices={sorted(self.devices)}, points={sorted(self.points)})"

    def whole(self, device: str) -> bool:
        """Whether every point of this device is wanted."""
        return self.everything or device in self.devices

    def touches(self, device: str) -> bool:
        """Whether any point of this device is wanted (its status frames are, then)."""
        return self.everything or device in self.devices or device in self._points_of

    def matches(self, device: str, point: str) -> bool:
        """Whether this point is wanted."""
        if self.everything or device in self.devices:
            return True
        named = self._points_of.get(device)
        return named is not None and point in named

    def points_of(self, device: str) -> frozenset[str]:
        """The points of this device named one by one (empty if none are)."""
        return self._points_of.get(device, frozenset())


EVERYTHING = Filter()
