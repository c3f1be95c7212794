-- Rooms found in the directory (Graph's Places API; src/pushsync/store/room_directory.py).

-- name: upsert_listed_room
-- A room the directory lists: new, or known (its details refreshed). One listed again after
-- pushsync let go of it is taken back and read in full.
INSERT INTO room (
    mailbox, protocol, created_at, display_name, capacity, building, floor_number, discovered_from
) VALUES (
    %(mailbox)s, %(protocol)s, %(now)s, %(display_name)s, %(capacity)s, %(building)s, %(floor_number)s, %(discovered_from)s
)
ON CONFLICT (mailbox) DO UPDATE SET
    display_name = excluded.display_name, capacity = excluded.capacity,
    building = excluded.building, floor_number = excluded.floor_number,
    discovered_from = excluded.discovered_from, missing_since = NULL,
    needs_resync = CASE WHEN room.removed_at IS NULL THEN room.needs_resync ELSE TRUE END,
    resync_reason = CASE WHEN room.removed_at IS NULL THEN room.resync_reason
                         ELSE 'listed again' END,
    removed_at = NULL;

-- name: listed_rooms
-- The rooms the directory gave us, those let go of included.
SELECT mailbox, discovered_from, missing_since, removed_at FROM room
WHERE discovered_from IS NOT NULL ORDER BY mailbox;

-- name: mark_room_missing
UPDATE room SET missing_since = %(now)s
WHERE mailbox = %(mailbox)s AND missing_since IS NULL AND removed_at IS NULL;

-- name: let_go_of_room
UPDATE room SET removed_at = %(now)s, needs_resync = FALSE, resync_reason = NULL
WHERE mailbox = %(mailbox)s AND removed_at IS NULL;

-- name: retire_room_subscriptions
UPDATE subscription SET state = 'retired', retired_at = %(now)s, last_error = %(reason)s
WHERE mailbox = %(mailbox)s AND state IN ('active', 'broken');

-- name: room_reservation_keys
SELECT mailbox, uid, original_start FROM reservation WHERE mailbox = %(mailbox)s;

-- name: active_rooms
-- Rooms pushsync keeps in sync: every room but those it let go of.
SELECT mailbox, protocol FROM room WHERE removed_at IS NULL ORDER BY mailbox;

-- name: record_discovery_answer
INSERT INTO room_discovery (source, checked_at, listed, problem)
VALUES (%(source)s, %(now)s, %(listed)s, %(problem)s)
ON CONFLICT (source) DO UPDATE SET
    checked_at = excluded.checked_at, listed = excluded.listed, problem = excluded.problem;

-- name: discovery_answers
SELECT source, checked_at, listed, problem FROM room_discovery ORDER BY source;
