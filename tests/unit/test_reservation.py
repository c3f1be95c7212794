"""The reservation decision function, with plain values only."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pushsync.model.reservation import Gone, Plan, Reservation, RoomSnapshot, Snapshot, Window, plan

ROOM = "room-1@example.org"
T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
EARLIER = datetime(2026, 11, 20, tzinfo=UTC)
LATER = datetime(2026, 11, 21, tzinfo=UTC)


def single(uid: str = "UID-1", start: datetime = T0, **changes: object) -> Reservation:
    row = Reservation(
        mailbox=ROOM,
        uid=uid,
        original_start=start,
        item_id=f"ID-{uid}",
        item_type="single",
        start=start,
        end=start + HOUR,
        subject="Alice",
        organizer="alice@example.org",
        last_modified=EARLIER,
        change_key="CK1",
    )
    return replace(row, **changes)


def series(
    uid: str = "SER", days: int = 5, master: str = "MASTER", **changes: object
) -> list[Reservation]:
    return [
        replace(
            single(uid, T0 + n * DAY),
            item_type="occurrence",
            item_id=f"OCC-{n}",
            series_master_id=master,
            **changes,
        )
        for n in range(days)
    ]


def apply(stored: list[Reservation], result: Plan) -> list[Reservation]:
    rows = {row.key: row for row in stored}
    for key in result.deletes:
        del rows[key]
    rows.update({row.key: row for row in result.upserts})
    return sorted(rows.values(), key=lambda r: r.key)


WINDOW = Window(T0 - DAY, T0 + 30 * DAY)


def test_create_books_the_room() -> None:
    row = single()
    result = plan([], [Snapshot(ROOM, "UID-1", (row,))])
    assert result.upserts == [row] and result.deletes == []


def test_update_rewrites_the_row_and_a_move_rekeys_it() -> None:
    stored = [single()]
    moved = single(start=T0 + 2 * HOUR, last_modified=LATER, change_key="CK2")
    result = plan(stored, [Snapshot(ROOM, "UID-1", (moved,), last_modified=LATER)])
    assert apply(stored, result) == [moved]
    assert result.deletes == [stored[0].key]


def test_cancelled_meeting_stays_flagged() -> None:
    stored = [single()]
    cancelled = single(is_cancelled=True, subject="Canceled: Alice", last_modified=LATER)
    result = plan(stored, [Snapshot(ROOM, "UID-1", (cancelled,), last_modified=LATER)])
    assert apply(stored, result) == [cancelled]


def test_removed_item_is_deleted() -> None:
    stored = [single(), single("UID-2")]
    result = plan(stored, [Gone(ROOM, "ID-UID-1")])
    assert apply(stored, result) == [single("UID-2")]


def test_declined_by_the_room_books_nothing() -> None:
    stored = [single(response_state="tentative")]
    declined = single(response_state="declined", last_modified=LATER)
    result = plan(stored, [Snapshot(ROOM, "UID-1", (declined,), last_modified=LATER)])
    assert apply(stored, result) == []
    assert plan([], [Snapshot(ROOM, "UID-1", (declined,))]).empty


def test_series_change_replaces_the_occurrences_in_the_window() -> None:
    stored = series(days=5)
    # occurrence 2 deleted (silently missing), occurrence 3 edited into an exception
    fresh = [row for row in series(days=5, last_modified=LATER) if row.item_id != "OCC-2"]
    fresh[2] = replace(
        fresh[2], item_type="exception", start=fresh[2].start + HOUR, end=fresh[2].end + HOUR
    )
    result = plan(stored, [Snapshot(ROOM, "SER", tuple(fresh), last_modified=LATER, window=WINDOW)])
    after = apply(stored, result)
    assert [r.item_id for r in after] == ["OCC-0", "OCC-1", "OCC-3", "OCC-4"]
    assert after[2].item_type == "exception" and after[2].start == T0 + 3 * DAY + HOUR


def test_series_rows_outside_the_window_are_left_alone() -> None:
    old = replace(series(days=1)[0], original_start=T0 - 10 * DAY, start=T0 - 10 * DAY)
    stored = [old, *series(days=2)]
    result = plan(stored, [Snapshot(ROOM, "SER", (), last_modified=LATER, window=WINDOW)])
    assert apply(stored, result) == [old]


def test_pattern_change_gives_new_ids_and_drops_exceptions() -> None:
    stored = series(days=3)
    stored[1] = replace(stored[1], item_type="exception", subject="moved")
    shifted = [
        replace(
            r,
            item_id=f"NEW-{i}",
            start=r.start + HOUR,
            end=r.end + HOUR,
            original_start=r.original_start + HOUR,
            last_modified=LATER,
            item_type="occurrence",
        )
        for i, r in enumerate(series(days=3))
    ]
    result = plan(
        stored, [Snapshot(ROOM, "SER", tuple(shifted), last_modified=LATER, window=WINDOW)]
    )
    after = apply(stored, result)
    assert [r.item_id for r in after] == ["NEW-0", "NEW-1", "NEW-2"]
    assert {r.item_type for r in after} == {"occurrence"}


def test_deleting_the_master_removes_every_occurrence() -> None:
    stored = [*series(days=4), single("OTHER")]
    result = plan(stored, [Gone(ROOM, "MASTER")])
    assert apply(stored, result) == [single("OTHER")]


def test_delete_plus_create_of_the_same_meeting_books_it_once() -> None:
    stored = [single()]
    recreated = single(item_id="ID-NEW", last_modified=LATER)
    for observations in (
        [Gone(ROOM, "ID-UID-1"), Snapshot(ROOM, "UID-1", (recreated,), last_modified=LATER)],
        [Snapshot(ROOM, "UID-1", (recreated,), last_modified=LATER), Gone(ROOM, "ID-UID-1")],
    ):
        assert apply(stored, plan(stored, observations)) == [recreated]


def test_an_older_snapshot_never_overwrites_a_newer_row() -> None:
    newer = single(subject="new", last_modified=LATER)
    older = single(subject="old", last_modified=EARLIER)
    assert plan([newer], [Snapshot(ROOM, "UID-1", (older,), last_modified=EARLIER)]).empty


def test_applying_the_same_observation_twice_writes_nothing_the_second_time() -> None:
    observation = Snapshot(
        ROOM, "SER", tuple(series(days=3, last_modified=LATER)), last_modified=LATER, window=WINDOW
    )
    once = apply([], plan([], [observation]))
    assert plan(once, [observation]).empty


def test_rows_of_other_rooms_are_untouched() -> None:
    other = replace(single(), mailbox="room-2@example.org")
    result = plan([other], [Gone(ROOM, "ID-UID-1"), Snapshot(ROOM, "UID-1", ())])
    assert result.empty


def test_all_day_event_keeps_its_flag_and_zone() -> None:
    day = datetime(2026, 12, 24, tzinfo=UTC)
    row = single("XMAS", day, is_all_day=True, end=day + DAY, time_zone="Europe/Berlin")
    assert plan([], [Snapshot(ROOM, "XMAS", (row,))]).upserts == [row]


def test_room_snapshot_replaces_the_room_inside_the_window_only() -> None:
    inside, gone = single("KEEP"), single("GONE", T0 + HOUR)
    far = single("FAR", T0 + 400 * DAY)
    other_room = replace(single("OTHER"), mailbox="room-2@example.org")
    fresh = (replace(inside, subject="renamed", last_modified=LATER), single("NEW", T0 + 3 * HOUR))
    result = plan([inside, gone, far, other_room], [RoomSnapshot(ROOM, fresh, WINDOW)])
    after = apply([inside, gone, far, other_room], result)
    assert sorted(r.uid for r in after) == ["FAR", "KEEP", "NEW", "OTHER"]
    assert next(r for r in after if r.uid == "KEEP").subject == "renamed"


def test_a_room_snapshot_leaves_rows_changed_after_it_was_read() -> None:
    read_at = datetime(2026, 11, 20, 12, tzinfo=UTC)
    booked_after = single("NEW", T0 + HOUR, last_modified=LATER)  # created after the read
    edited_after = single("EDITED", subject="new", last_modified=LATER)
    old_copy = single("EDITED", subject="old", last_modified=EARLIER)
    unchanged = single("OLD", T0 + 2 * HOUR)
    snapshot = RoomSnapshot(ROOM, (old_copy,), WINDOW, taken_at=read_at)

    after = apply(
        [booked_after, edited_after, unchanged],
        plan([booked_after, edited_after, unchanged], [snapshot]),
    )

    assert sorted((r.uid, r.subject) for r in after) == [("EDITED", "new"), ("NEW", "Alice")]
