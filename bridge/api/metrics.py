"""``/metrics`` in the Prometheus text exposition format.

Each metric is one row of a table: its name, kind, help text and where its value comes
from (a device's runtime figures, or the whole process's).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any, NamedTuple

from bridge import __version__
from bridge.poller import DeviceRuntime
from bridge.service import Bridge
from bridge.states import ANSWERING


class DeviceMetric(NamedTuple):
    """One sample per device, labelled with its id and driver."""

    name: str
    kind: str
    help: str
    value: Callable[[DeviceRuntime], int | float]


class ProcessMetric(NamedTuple):
    """One unlabelled sample for the whole process."""

    name: str
    kind: str
    help: str
    value: Callable[[Bridge], int | float]


DEVICE_METRICS = (
    DeviceMetric(
        "device_bridge_polls_total",
        "counter",
        "Polls of each device, failed ones included.",
        lambda d: d.polls,
    ),
    DeviceMetric(
        "device_bridge_poll_failures_total",
        "counter",
        "Polls in which the device did not answer.",
        lambda d: d.poll_failures,
    ),
    DeviceMetric(
        "device_bridge_point_failures_total",
        "counter",
        "Point values that could not be read in an otherwise good poll.",
        lambda d: d.point_failures,
    ),
    DeviceMetric(
        "device_bridge_missed_cycles_total",
        "counter",
        "Poll cycles skipped because the link was busy past their deadline.",
        lambda d: d.missed_cycles,
    ),
)

LATENCY = "device_bridge_poll_latency_seconds"
LATENCY_HELP = "Time one answered poll of a device took."

DEVICE_UP = DeviceMetric(
    "device_bridge_device_up",
    "gauge",
    "1 while the device answers (online or degraded).",
    lambda d: int(d.status in ANSWERING),
)

PROCESS_METRICS = (
    ProcessMetric(
        "device_bridge_readings_published_total",
        "counter",
        "Readings published since the process started (the last seq).",
        lambda b: b.store.seq,
    ),
    ProcessMetric(
        "device_bridge_stream_subscribers",
        "gauge",
        "WebSocket subscribers connected now.",
        lambda b: len(b.hub.subscribers),
    ),
    ProcessMetric(
        "device_bridge_stream_overflows_total",
        "counter",
        "Subscribers closed (1013) because they could not keep up.",
        lambda b: b.hub.overflows,
    ),
    ProcessMetric(
        "device_bridge_stream_stalls_total",
        "counter",
        "Subscribers that did not take their close frame in time: their connection was cut.",
        lambda b: b.hub.stalls,
    ),
)


class NorthMetric(NamedTuple):
    """One unlabelled sample about north over MQTT, from ``North.describe()``."""

    name: str
    kind: str
    help: str
    value: Callable[[dict[str, Any]], int | float]


#: only when north is configured (BRIDGE_MQTT_URL)
NORTH_METRICS = (
    NorthMetric(
        "device_bridge_mqtt_connected",
        "gauge",
        "1 while the MQTT broker is connected.",
        lambda n: int(n["connected"]),
    ),
    NorthMetric(
        "device_bridge_mqtt_outbox_depth",
        "gauge",
        "Frames in the outbox, not yet acknowledged by the broker.",
        lambda n: n["outbox"]["depth"],
    ),
    NorthMetric(
        "device_bridge_mqtt_outbox_bytes",
        "gauge",
        "Bytes of the frames in the outbox.",
        lambda n: n["outbox"]["bytes"],
    ),
    NorthMetric(
        "device_bridge_mqtt_outbox_oldest_age_seconds",
        "gauge",
        "Age of the oldest frame in the outbox (0 when empty).",
        lambda n: n["outbox"]["oldest_age_seconds"],
    ),
    NorthMetric(
        "device_bridge_mqtt_published_total",
        "counter",
        "Messages sent to the broker (sent again after a reconnect included).",
        lambda n: n["published"],
    ),
    NorthMetric(
        "device_bridge_mqtt_acknowledged_total",
        "counter",
        "Messages the broker acknowledged (PUBACK).",
        lambda n: n["acknowledged"],
    ),
    NorthMetric(
        "device_bridge_mqtt_dropped_frames_total",
        "counter",
        "Frames dropped because the outbox was over its limits.",
        lambda n: n["outbox"]["dropped_frames"],
    ),
    NorthMetric(
        "device_bridge_mqtt_dropped_readings_total",
        "counter",
        "Readings in the frames dropped.",
        lambda n: n["outbox"]["dropped_readings"],
    ),
    NorthMetric(
        "device_bridge_mqtt_reconnects_total",
        "counter",
        "Connections to the broker after the first.",
        lambda n: n["reconnects"],
    ),
)


DRIVER_EVENTS = "device_bridge_driver_events_total"
DRIVER_EVENTS_HELP = (
    "The driver's own counts, per device (a Modbus link's are the link's, repeated on each "
    "of its devices; serial-line: lines skipped as garbage, partial "
    "or overlong; modbus-tcp: late replies and unframed bytes dropped; modbus-rtu: bytes "
    "that came while no request was out, requests that got only another unit's reply)."
)
BUILD_INFO = "device_bridge_build_info"
BUILD_INFO_HELP = "Always 1; the labels say which build and Python are running."

#: the Content-Type of the Prometheus text exposition format
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(bridge: Bridge) -> str:
    """Per-device poll counts, failures and latency, and the stream's figures."""
    labelled = [
        (f'{{device="{d.config.id}",driver="{d.config.driver}"}}', d)
        for d in bridge.devices.values()
    ]
    lines: list[str] = []
    for metric in DEVICE_METRICS:
        lines += _header(metric.name, metric.kind, metric.help)
        lines += [_sample(metric.name + label, metric.value(d)) for label, d in labelled]
    lines += _header(LATENCY, "summary", LATENCY_HELP)
    for label, d in labelled:
        lines.append(_sample(f"{LATENCY}_sum{label}", d.latency_sum))
        lines.append(_sample(f"{LATENCY}_count{label}", d.answered))
    lines += _header(DEVICE_UP.name, DEVICE_UP.kind, DEVICE_UP.help)
    lines += [_sample(DEVICE_UP.name + label, DEVICE_UP.value(d)) for label, d in labelled]
    lines += _header(DRIVER_EVENTS, "counter", DRIVER_EVENTS_HELP)
    for label, d in labelled:
        for event, count in sorted(bridge.driver_counters(d.config.id).items()):
            lines.append(_sample(f'{DRIVER_EVENTS}{label[:-1]},event="{event}"}}', count))
    for process_metric in PROCESS_METRICS:
        lines += _header(process_metric.name, process_metric.kind, process_metric.help)
        lines.append(_sample(process_metric.name, process_metric.value(bridge)))
    if bridge.north is not None:
        north = bridge.north.describe()
        for north_metric in NORTH_METRICS:
            lines += _header(north_metric.name, north_metric.kind, north_metric.help)
            lines.append(_sample(north_metric.name, north_metric.value(north)))
    lines += _header(BUILD_INFO, "gauge", BUILD_INFO_HELP)
    python = platform.python_version()
    lines.append(_sample(f'{BUILD_INFO}{{version="{__version__}",python="{python}"}}', 1))
    return "\n".join(lines) + "\n"


def _header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _sample(series: str, value: int | float) -> str:
    # Integers exactly: ``:g`` would print 1.23457e+06; floats as their shortest repr.
    return f"{series} {value}" if isinstance(value, int) else f"{series} {value!r}"
