"""The rooms' gauges: counted per problem kind, and never silent when the database is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pushsync.admin.metrics import rooms_exposition
from pushsync.admin.room_status import RoomStatus

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def status(kind: str | None, pending: int = 0, oldest: datetime | None = None) -> RoomStatus:
    return RoomStatus(
        mailbox=f"{kind}@contoso.example",
        protocol="ews",
        subscription_id=None,
        subscription_state=None,
        last_heard=None,
        last_synced_at=None,
        resync_reason=None,
        paused_until=None,
        pending=pending,
        failed=0,
        oldest_pending=oldest,
        problem=kind and f"{kind}: why",
        kind=kind,
    )


def test_rooms_are_counted_by_kind_with_the_oldest_waiting_row() -> None:
    text = rooms_exposition(
        [status(None), status(None), status("behind", 3, NOW - timedelta(minutes=7))], NOW
    ).decode()
    assert "pushsync_room_status_up 1.0" in text
    assert 'pushsync_rooms{status="in sync"} 2.0' in text
    assert 'pushsync_rooms{status="behind"} 1.0' in text
    assert 'pushsync_rooms{status="throttled"} 0.0' in text  # every kind, so alerts can match
    assert "pushsync_waiting_notifications 3.0" in text
    assert "pushsync_oldest_waiting_notification_seconds 420.0" in text


def test_an_unreadable_database_says_so_instead_of_going_quiet() -> None:
    text = rooms_exposition(None, NOW).decode()
    assert "pushsync_room_status_up 0.0" in text
    assert "pushsync_rooms{" not in text
