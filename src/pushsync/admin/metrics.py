"""The rooms' gauges, computed from the database at each scrape of the admin listener."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from pushsync.admin.process_status import Fleet
from pushsync.admin.room_status import PROBLEM_KINDS, RoomStatus


def rooms_exposition(
    statuses: Sequence[RoomStatus] | None, now: datetime, processes: Fleet | None = None
) -> bytes:
    """Gauges of the rooms' sync status, read from the database at each scrape: they hold for
    every worker process at once, wherever it runs. Alert on `pushsync_rooms{status!="in sync"}`,
    on `pushsync_oldest_waiting_notification_seconds`, and on `pushsync_room_status_up` 0 (the
    database could not be read: None here), so that the alerts never just go quiet."""
    registry = CollectorRegistry()
    up = Gauge("pushsync_room_status_up", "1 if the rooms' status could be read", registry=registry)
    up.set(0 if statuses is None else 1)
    if statuses is None:
        return generate_latest(registry)
    rooms = Gauge(
        "pushsync_rooms",
        "Rooms by sync status (their problem's kind)",
        ["status"],
        registry=registry,
    )
    for kind in (None, *PROBLEM_KINDS):
        rooms.labels(kind or "in sync").set(sum(1 for s in statuses if s.kind == kind))
    Gauge(
        "pushsync_waiting_notifications",
        "Notification rows not yet worked off",
        registry=registry,
    ).set(sum(s.pending for s in statuses))
    Gauge(
        "pushsync_failed_notifications",
        "Failed notification rows not yet healed by a resync of their room",
        registry=registry,
    ).set(sum(s.failed for s in statuses))
    oldest = [now - s.oldest_pending for s in statuses if s.oldest_pending is not None]
    Gauge(
        "pushsync_oldest_waiting_notification_seconds",
        "Age of the oldest notification row not yet worked off (0: none waits)",
        registry=registry,
    ).set(max(oldest).total_seconds() if oldest else 0.0)
    if processes is not None:
        _processes(registry, processes)
    return generate_latest(registry)


def _processes(registry: CollectorRegistry, fleet: Fleet) -> None:
    """Per kind, protocol and host: 1 if a process of them beats. A kind the rooms need and
    that never ran is 0 with host "" (so `pushsync_process_up{kind="worker"} == 0` fires for
    a worker never started too)."""
    labels = ["kind", "protocol", "host"]
    up = Gauge(
        "pushsync_process_up", "1 if the process beats its heartbeat", labels, registry=registry
    )
    last = Gauge(
        "pushsync_process_last_heartbeat_timestamp_seconds",
        "When the process last noted it lives (Unix time)",
        labels,
        registry=registry,
    )
    groups: dict[tuple[str, str, str], list[float]] = {}
    alive: dict[tuple[str, str, str], bool] = {}
    for process in fleet.processes:
        key = (process.kind, process.protocol or "", process.host)
        groups.setdefault(key, []).append(process.last_beat.timestamp())
        alive[key] = alive.get(key, False) or process.alive
    for key, beats in groups.items():
        up.labels(*key).set(1 if alive[key] else 0)
        last.labels(*key).set(max(beats))
    for kind, protocol in fleet.missing():
        up.labels(kind, protocol or "", "").set(0)
