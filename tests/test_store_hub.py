"""The store (latest, history, seq, deadband, resume) and the hub (fan-out, overflow)."""

from __future__ import annotations

import json

from bridge.hub import Hub
from bridge.readings import PublishedReading
from bridge.states import Quality
from bridge.store import Store
from drivers.base import PointFailure
from drivers.modbus.config import ModbusTcpDevice


def device(device_id: str = "boiler", deadband: float | None = None) -> ModbusTcpDevice:
    return ModbusTcpDevice.model_validate(
        {"id": device_id, "driver": "modbus-tcp", "connection": {"host": "h"},
         "points": [{"id": "t", "table": "holding", "address": 0, "type": "float32",
                     "deadband": deadband},
                    {"id": "on", "table": "coil", "address": 0}]}
    )  # fmt: skip


def test_points_start_bad_and_never_read() -> None:
    store = Store([device()], history=10)
    latest = store.latest("boiler", "t")
    assert (latest.quality, latest.value, latest.seq, latest.ts) == ("bad", None, 0, None)
    assert latest.to_json()["error"] == "not read yet"


def test_only_changes_beyond_the_deadband_are_published() -> None:
    store = Store([device(deadband=0.5)], history=10)
    first = store.apply_poll("boiler", {"t": 20.0, "on": True}, ts=100.0)
    assert [(r.point, r.value, r.seq) for r in first] == [("t", 20.0, 1), ("on", True, 2)]
    assert store.apply_poll("boiler", {"t": 20.4, "on": True}, ts=101.0) == []
    # the kept value is the published one, but the poll confirmed it: ts moves on
    latest = store.latest("boiler", "t")
    assert (latest.value, latest.ts, latest.seq) == (20.0, 101.0, 1)
    moved = store.apply_poll("boiler", {"t": 20.6, "on": False}, ts=102.0)
    assert [(r.point, r.value, r.seq) for r in moved] == [("t", 20.6, 3), ("on", False, 4)]
    assert store.seq == 4


def test_without_deadband_any_change_and_a_type_change_publish() -> None:
    store = Store([device()], history=10)
    store.apply_poll("boiler", {"t": 1.0, "on": True}, ts=1.0)
    assert store.apply_poll("boiler", {"t": 1.0, "on": True}, ts=2.0) == []
    assert [r.value for r in store.apply_poll("boiler", {"t": 1.0000001, "on": True}, 3.0)] == [
        1.0000001
    ]


def test_a_failing_device_turns_good_readings_stale_with_their_last_value() -> None:
    store = Store([device()], history=10)
    store.apply_poll("boiler", {"t": 20.0, "on": PointFailure("refused")}, ts=100.0)
    stale = store.mark_stale("boiler", "timeout")
    assert [(r.point, r.quality, r.value, r.ts, r.error) for r in stale] == [
        ("t", "stale", 20.0, 100.0, "timeout")
    ]
    assert store.latest("boiler", "on").quality == "bad"
    assert store.mark_stale("boiler", "timeout") == []  # only once
    back = store.apply_poll("boiler", {"t": 20.0, "on": PointFailure("refused")}, ts=105.0)
    assert [(r.point, r.quality) for r in back] == [("t", "good")]  # same failure: not again


def test_history_is_bounded_and_resume_reports_gaps() -> None:
    store = Store([device(), device("other")], history=3)
    for i in range(5):
        store.apply_poll("boiler", {"t": float(i), "on": True}, ts=float(i))
        store.apply_poll("other", {"t": float(i), "on": True}, ts=float(i))
    kept = store.history("boiler", "t")
    assert [r.value for r in kept] == [2.0, 3.0, 4.0]
    assert [r.value for r in store.history("boiler", "t", since=3.0)] == [3.0, 4.0]
    assert [r.value for r in store.history("boiler", "t", limit=1)] == [2.0]
    pairs = store.select(["boiler"])
    # every reading after the oldest kept one comes back, in seq order, once
    oldest = kept[0].seq
    again = store.published_since(oldest - 1, pairs)
    assert again is not None
    assert [r.seq for r in again] == sorted({r.seq for r in again})
    assert all(r.device == "boiler" and r.seq >= oldest for r in again)
    assert store.published_since(0, pairs) is None  # the first readings are gone: a gap
    assert store.published_since(store.seq, pairs) == []


def test_select_filters() -> None:
    store = Store([device(), device("other")], history=3)
    assert len(store.select()) == 4
    assert store.select(["other"]) == [("other", "t"), ("other", "on")]
    assert store.select([], ["boiler/on"]) == [("boiler", "on")]
    assert store.select(["other"], ["boiler/on"]) == [
        ("boiler", "on"), ("other", "t"), ("other", "on")
    ]  # fmt: skip


def reading(point: str, seq: int, device_id: str = "boiler") -> PublishedReading:
    return PublishedReading(device_id, point, 1.0, None, Quality.GOOD, 0.0, seq)


def test_hub_sends_the_same_frame_to_all_and_filters_per_subscriber() -> None:
    hub = Hub(queue_size=10)
    everyone, only_t, other = hub.subscribe(), hub.subscribe(), hub.subscribe()
    only_t.set_filter([], ["boiler/t"])
    other.set_filter(["other"], [])
    hub.publish_readings("boiler", [reading("t", 1), reading("on", 2)])
    frame = everyone.queue.get_nowait()
    assert [r["point"] for r in json.loads(frame)["readings"]] == ["t", "on"]
    assert [r["point"] for r in json.loads(only_t.queue.get_nowait())["readings"]] == ["t"]
    assert other.queue.empty()


def test_a_subscriber_that_cannot_keep_up_is_marked_without_blocking_others() -> None:
    hub = Hub(queue_size=2)
    slow, fast = hub.subscribe(), hub.subscribe()
    for seq in range(1, 6):
        hub.publish_readings("boiler", [reading("t", seq)])
        fast.queue.get_nowait()
    assert slow.overflowed.is_set()
    assert slow.queue.qsize() == 2
    assert not fast.overflowed.is_set()
    assert hub.overflows == 1
