"""The rooms' gauges: counted per problem kind, and never silent when the database is not."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pushsync.admin.metrics import rooms_exposition
from pushsync.admin.process_status import Fleet
from pushsync.admin.room_status import RoomStatus, Totals
from pushsync.store.processes import ProcessStatus

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
    rooms = [status(None), status(None), status("behind", 3, NOW - timedelta(minutes=7))]
    text = rooms_exposition(Totals.of(rooms), NOW).decode()
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


def test_processes_are_up_per_kind_protocol_and_host_and_a_missing_worker_is_down() -> None:
    beat = NOW - timedelta(seconds=5)
    alive = ProcessStatus("receiver", None, "rooms-1", 10, NOW, beat, None, True, None)
    dead = ProcessStatus("manager", "ews", "rooms-1", 11, NOW, beat, None, False, beat)
    fleet = Fleet([alive, dead], frozenset({"ews"}))
    text = rooms_exposition(Totals.of([status("no worker")]), NOW, fleet).decode()
    assert 'pushsync_process_up{host="rooms-1",kind="receiver",protocol=""} 1.0' in text
    assert 'pushsync_process_up{host="rooms-1",kind="manager",protocol="ews"} 0.0' in text
    assert 'pushsync_process_up{host="",kind="worker",protocol="ews"} 0.0' in text  # never ran
    stamp = re.search(
        r'^pushsync_process_last_heartbeat_timestamp_seconds\{host="rooms-1",kind="manager",'
        r'protocol="ews"\} (\S+)$',
        text,
        re.MULTILINE,
    )
    assert stamp and float(stamp[1]) == beat.timestamp()
    assert 'pushsync_rooms{status="no worker"} 1.0' in text
