"""The rooms' gauges, computed from the database at each scrape of the admin listener."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from pushsync.admin.room_status import PROBLEM_KINDS, RoomStatus


def rooms_exposition(statuses: Sequence[RoomStatus] | None, now: datetime) -> bytes:
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
    polling = Gauge(
        "pushsync_polling_rooms",
        "Rooms read every few minutes because their protocol refused them a subscription, by why",
        ["reason"],
        registry=registry,
    )
    for reason in sorted({s.polling_reason for s in statuses if s.polling_reason}):
        polling.labels(reason).set(sum(1 for s in statuses if s.polling_reason == reason))
    Gauge(
        "pushsync_migrating_rooms",
        "Rooms being moved between protocols by `pushsync rooms migrate`",
        registry=registry,
    ).set(sum(1 for s in statuses if s.migration))
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
    return generate_latest(registry)
