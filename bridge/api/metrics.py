"""``/metrics`` in the Prometheus text exposition format."""

from __future__ import annotations

from bridge.service import Bridge


def render(bridge: Bridge) -> str:
    """Per-device poll counts, failures and latency, and the stream's figures."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(
                f"{name}{labels} {value}"  # exact: ``:g`` would print 1.23457e+06
                if isinstance(value, int)
                else f"{name}{labels} {value!r}"
            )

    devices = list(bridge.devices.values())
    label = [f'{{device="{d.config.id}",driver="{d.config.driver}"}}' for d in devices]
    family(
        "device_bridge_polls_total",
        "counter",
        "Polls of each device, failed ones included.",
        [(lbl, d.polls) for lbl, d in zip(label, devices, strict=True)],
    )
    family(
        "device_bridge_poll_failures_total",
        "counter",
        "Polls in which the device did not answer.",
        [(lbl, d.poll_failures) for lbl, d in zip(label, devices, strict=True)],
    )
    family(
        "device_bridge_point_failures_total",
        "counter",
        "Point values that could not be read in an otherwise good poll.",
        [(lbl, d.point_failures) for lbl, d in zip(label, devices, strict=True)],
    )
    family(
        "device_bridge_missed_cycles_total",
        "counter",
        "Poll cycles skipped because the link was busy past their deadline.",
        [(lbl, d.missed_cycles) for lbl, d in zip(label, devices, strict=True)],
    )
    lines.append(
        "# HELP device_bridge_poll_latency_seconds Time one answered poll of a device took."
    )
    lines.append("# TYPE device_bridge_poll_latency_seconds summary")
    for lbl, d in zip(label, devices, strict=True):
        lines.append(f"device_bridge_poll_latency_seconds_sum{lbl} {d.latency_sum!r}")
        lines.append(f"device_bridge_poll_latency_seconds_count{lbl} {d.answered}")
    family(
        "device_bridge_device_up",
        "gauge",
        "1 while the device answers (online or degraded).",
        [
            (lbl, int(d.status in ("online", "degraded")))
            for lbl, d in zip(label, devices, strict=True)
        ],
    )
    family(
        "device_bridge_readings_published_total",
        "counter",
        "Readings published since the process started (the last seq).",
        [("", bridge.store.seq)],
    )
    family(
        "device_bridge_stream_subscribers",
        "gauge",
        "WebSocket subscribers connected now.",
        [("", len(bridge.hub.subscribers))],
    )
    family(
        "device_bridge_stream_overflows_total",
        "counter",
        "Subscribers closed (1013) because they could not keep up.",
        [("", bridge.hub.overflows)],
    )
    return "\n".join(lines) + "\n"
