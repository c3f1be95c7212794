"""The rooms' gauges, counted by the database at each scrape of the admin listener."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from pushsync.admin.process_status import Fleet
from pushsync.admin.room_status import PROBLEM_KINDS, Totals


def rooms_exposition(totals: Totals | None, now: datetime, processes: Fleet | None = None) -> bytes:
    """Gauges of the rooms' sync status, counted by the database at each scrape
    (`room_status.Totals`): they hold for every worker process at once, wherever it runs.
    Alert on `pushsync_rooms{status!="in sync"}`, on
    `pushsync_oldest_waiting_notification_seconds`, and on `pushsync_room_status_up` 0 (the
    database could not be read: None here), so that the alerts never just go quiet."""
    registry = CollectorRegistry()
    up = Gauge("pushsync_room_status_up", "1 if the rooms' status could be read", registry=registry)
    up.set(0 if totals is None else 1)
    if totals is None:
        return generate_latest(registry)
    rooms = Gauge(
        "pushsync_rooms",
        "Rooms by sync status (their problem's kind)",
        ["status"],
        registry=registry,
    )
    for kind in (None, *PROBLEM_KINDS):
        rooms.labels(kind or "in sync").set(totals.by_kind.get(kind, 0))
    polling = Gauge(
        "pushsync_polling_rooms",
        "Rooms read every few minutes because their protocol refused them a subscription, by why",
        ["reason"],
        registry=registry,
    )
    for reason in sorted(totals.polling):
        polling.labels(reason).set(totals.polling[reason])
    Gauge(
        "pushsync_migrating_rooms",
        "Rooms being moved between protocols by `pushsync rooms migrate`",
        registry=registry,
    ).set(totals.moving)
    Gauge(
        "pushsync_waiting_notifications",
        "Notification rows not yet worked off",
        registry=registry,
    ).set(totals.pending)
    Gauge(
        "pushsync_failed_notifications",
        "Failed notification rows not yet healed by a resync of their room",
        registry=registry,
    ).set(totals.failed)
    oldest = totals.oldest_pending
    Gauge(
        "pushsync_oldest_waiting_notification_seconds",
        "Age of the oldest notification row not yet worked off (0: none waits)",
        registry=registry,
    ).set((now - oldest).total_seconds() if oldest is not None else 0.0)
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
