-- The reservation table (src/pushsync/reservations.py). Parameters are :named; lists arrive
-- as JSON and are read with json_each.

-- name: reservations_for_meetings
SELECT * FROM reservation
WHERE mailbox = :mailbox
  AND (uid IN (SELECT value FROM json_each(:uids))
       OR item_id IN (SELECT value FROM json_each(:item_ids))
       OR series_master_id IN (SELECT value FROM json_each(:item_ids)));

-- name: reservations_for_room
SELECT * FROM reservation WHERE mailbox = :mailbox;

-- name: all_reservations
SELECT * FROM reservation ORDER BY mailbox, uid, original_start;

-- name: upsert_reservation
INSERT INTO reservation (
    mailbox, uid, original_start, item_id, series_master_id, item_type, subject, organizer,
    start_at, end_at, time_zone, is_all_day, location, sensitivity, response_state,
    is_cancelled, change_key, last_modified, last_synced_at
) VALUES (
    :mailbox, :uid, :original_start, :item_id, :series_master_id, :item_type, :subject,
    :organizer, :start_at, :end_at, :time_zone, :is_all_day, :location, :sensitivity,
    :response_state, :is_cancelled, :change_key, :last_modified, :last_synced_at
)
ON CONFLICT (mailbox, uid, original_start) DO UPDATE SET
    item_id = excluded.item_id, series_master_id = excluded.series_master_id,
    item_type = excluded.item_type, subject = excluded.subject, organizer = excluded.organizer,
    start_at = excluded.start_at, end_at = excluded.end_at, time_zone = excluded.time_zone,
    is_all_day = excluded.is_all_day, location = excluded.location,
    sensitivity = excluded.sensitivity, response_state = excluded.response_state,
    is_cancelled = excluded.is_cancelled, change_key = excluded.change_key,
    last_modified = excluded.last_modified, last_synced_at = excluded.last_synced_at;

-- name: delete_reservation
DELETE FROM reservation
WHERE mailbox = :mailbox AND uid = :uid AND original_start = :original_start;

-- name: mark_room_synced
-- The request is cleared only if it is the one the resync started under (resync_generation).
UPDATE room
SET needs_resync = needs_resync AND resync_generation <> :generation,
    resync_reason = CASE WHEN resync_generation = :generation THEN NULL ELSE resync_reason END,
    last_synced_at = :now, last_error = NULL
WHERE mailbox = :mailbox;

-- name: rooms_needing_resync
-- Requested ones first (`due`), then periodic ones, least recently synced first; a room that
-- failed since failed_before waits.
SELECT mailbox, protocol, resync_reason, resync_generation, needs_resync AS due FROM room
WHERE (needs_resync OR last_synced_at < :synced_before)
  AND (last_error_at IS NULL OR :failed_before IS NULL OR last_error_at < :failed_before)
ORDER BY needs_resync DESC, last_synced_at, mailbox
LIMIT :limit;

-- name: demo_counts
SELECT (SELECT count(*) FROM sync_notification) AS notifications,
       (SELECT count(*) FROM sync_notification WHERE state IN ('pending', 'claimed')) AS pending,
       (SELECT count(*) FROM reservation) AS reservations;

-- name: lock_room_reservations
-- Every session already holds SQLite's one writer lock (BEGIN IMMEDIATE): nothing to add.
SELECT :mailbox AS mailbox;
