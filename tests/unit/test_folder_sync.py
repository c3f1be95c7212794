"""Which folder events say that a change went unnamed (plain values)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pushsync.ews.folder_sync import folder_events
from pushsync.model.notification import Notification
from pushsync.store.notification_queue import Claimed

CALENDAR, DELETED_ITEMS, ROOT = "CAL", "DEL", "ROOT"


def row(event_type: str, **fields: Any) -> Claimed:
    notification = Notification("ews", "S1", event_type, **fields)
    return Claimed(1, 0, "room@example.org", datetime(2026, 11, 24, tzinfo=UTC), notification)


def item(event_type: str, parent: str = CALENDAR, old_parent: str | None = None) -> Claimed:
    return row(event_type, item_id="I", parent_folder_id=parent, old_parent_folder_id=old_parent)


def folder(folder_id: str = CALENDAR) -> Claimed:
    return row("Modified", folder_id=folder_id, parent_folder_id=ROOT)


def test_a_folder_event_paired_with_an_item_event_counts_once() -> None:
    assert folder_events([item("Created"), folder(), item("Modified"), folder()]) == set()


def test_a_move_out_of_the_calendar_pairs_with_both_folders_events() -> None:
    moved = item("Moved", DELETED_ITEMS, CALENDAR)
    assert folder_events([moved, folder(DELETED_ITEMS), folder(CALENDAR)]) == set()


def test_folder_events_beyond_the_item_events_name_their_folder() -> None:
    assert folder_events([folder()]) == {CALENDAR}
    assert folder_events([item("Modified"), folder(), folder()]) == {CALENDAR}
    assert folder_events([item("Modified", parent="SUB"), folder()]) == {CALENDAR}


def test_free_busy_changes_come_without_a_folder_event_to_pair_with() -> None:
    assert folder_events([item("Modified"), item("FreeBusyChanged"), folder(), folder()]) == {
        CALENDAR
    }


def test_status_and_error_rows_are_not_changes() -> None:
    assert folder_events([row("Status", folder_id=CALENDAR), row("Error")]) == set()
