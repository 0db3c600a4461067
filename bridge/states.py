"""The two vocabularies of the wire: a reading's quality and a device's status.

String enums, so that each value is its wire text (``Quality.GOOD == "good"``) and JSON
encoders write it unchanged. Dependency-free: the service and the client both use them.
"""

from __future__ import annotations

from enum import StrEnum


class Quality(StrEnum):
    """How far a reading's value can be trusted."""

    #: read in the device's last poll
    GOOD = "good"
    #: the device stopped answering; the value is the last good one
    STALE = "stale"
    #: no usable value; the reading's ``error`` says why
    BAD = "bad"


class Status(StrEnum):
    """How a device is answering its polls."""

    #: not polled yet
    STARTING = "starting"
    #: its last poll read every point
    ONLINE = "online"
    #: its last poll answered, but some points could not be read
    DEGRADED = "degraded"
    #: it did not answer its last poll
    OFFLINE = "offline"


#: statuses in which the device answers
ANSWERING = frozenset({Status.ONLINE, Status.DEGRADED})
