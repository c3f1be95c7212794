-- The reservation table (src/pushsync/store/reservation_book.py). Parameters are :named; lists arrive
-- as JSON and are read with json_each.

-- name: reservations_for_meetings
SELECT * FROM reservation
WHERE mailbox = :mailbox
  AND (uid IN (SELECT value FROM json_each(:uids))
       OR item_id IN (SELECT value FROM json_each(:item_ids))
       OR series_master_id IN (SELECT value FROM json_each(:item_ids)));

-- name: series_uids
SELECT DISTINCT series_master_id, uid FROM reservation
WHERE mailbox = :mailbox AND series_master_id IN (SELECT value FROM json_each(:master_ids));

-- name: reservations_for_room
SELECT * FROM reservation WHERE mailbox = :mailbox;

-- name: all_reservations
SELECT * FROM reservation ORDER BY mailbox, uid, original_start NULLS FIRST;

-- name: upsert_reservation
-- Positional parameters, in the order of pushsync.store.reservation_book.UPSERT_COLUMNS (a
-- test holds this list to it): a plan's rows go as one multi-row INSERT.
INSERT INTO reservation (
    mailbox, uid, original_start, item_id, item_type, start_at, end_at, subject, organizer,
    series_master_id, time_zone, is_all_day, location, sensitivity, response_state, is_cancelled,
    change_key, last_modified, last_synced_at
) VALUES (
    ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
)
-- A single meeting has no original start (NULL); the key index reads NULL as one value.
ON CONFLICT (mailbox, uid, coalesce(original_start, '')) DO UPDATE SET
    item_id = excluded.item_id, series_master_id = excluded.series_master_id,
    item_type = excluded.item_type, subject = excluded.subject, organizer = excluded.organizer,
    start_at = excluded.start_at, end_at = excluded.end_at, time_zone = excluded.time_zone,
    is_all_day = excluded.is_all_day, location = excluded.location,
    sensitivity = excluded.sensitivity, response_state = excluded.response_state,
    is_cancelled = excluded.is_cancelled, change_key = excluded.change_key,
    last_modified = excluded.last_modified, last_synced_at = excluded.last_synced_at;

-- name: delete_reservation
DELETE FROM reservation
WHERE mailbox = :mailbox AND uid = :uid AND original_start IS :original_start;

-- name: mark_room_synced
-- The request is cleared only if it is the one the resync started under (resync_generation).
UPDATE room
SET needs_resync = needs_resync AND resync_generation <> :generation,
    resync_reason = CASE WHEN resync_generation = :generation THEN NULL ELSE resync_reason END,
    last_synced_at = :now, last_error = NULL, resync_lease_until = NULL
WHERE mailbox = :mailbox;

-- name: claim_resyncs
-- Rooms to resync now, leased to this worker so that no other reads them at the same time:
-- requested ones (`due`) first, then, if `periodic`, those last synced before synced_before
-- that still have a live subscription (a room without one is not being kept in sync, e.g. one
-- taken out of the configuration), never synced first of all; not a room inside Exchange's
-- back-off, nor one leased (being read, or whose last read failed: the lease spaces out its
-- retries), nor one of a protocol this worker cannot read. A room's first read waits for its
-- subscription (or its polling): what changed between an earlier read and the Subscribe would
-- be neither read nor pushed (docs/decisions.md, "Resyncs run at once"). Each kind is walked
-- in order from its index (migration 0020) and only as far as the limit, not sorted whole.
UPDATE room SET resync_lease_until = :lease_until
WHERE mailbox IN (
    SELECT mailbox FROM (
      SELECT mailbox, 0 AS kind FROM (
        SELECT mailbox FROM room
        WHERE needs_resync
          AND (last_synced_at IS NOT NULL OR poll_reason IS NOT NULL OR EXISTS (
               SELECT 1 FROM subscription s
               WHERE s.mailbox = room.mailbox AND s.state IN ('active', 'broken')))
          AND protocol IN (SELECT value FROM json_each(:protocols))
          AND (resync_lease_until IS NULL OR resync_lease_until <= :now)
          AND (paused_until IS NULL OR paused_until <= :now)
        ORDER BY last_synced_at NULLS FIRST, mailbox
        LIMIT :limit
      ) AS requested
      UNION ALL
      SELECT mailbox, 1 AS kind FROM (
        SELECT mailbox FROM room
        WHERE :periodic AND NOT needs_resync AND last_synced_at < :synced_before
          AND EXISTS (
               SELECT 1 FROM subscription s
               WHERE s.mailbox = room.mailbox AND s.state IN ('active', 'broken'))
          AND protocol IN (SELECT value FROM json_each(:protocols))
          AND (resync_lease_until IS NULL OR resync_lease_until <= :now)
          AND (paused_until IS NULL OR paused_until <= :now)
        ORDER BY last_synced_at NULLS FIRST, mailbox
        LIMIT :limit
      ) AS periodic
    ) AS candidates
    ORDER BY kind
    LIMIT :limit
)
RETURNING mailbox, protocol, resync_reason, resync_generation, needs_resync AS due;

-- name: release_resync
-- A resync that was throttled gives its room back at once (the back-off is paused_until's).
UPDATE room SET resync_lease_until = NULL WHERE mailbox = :mailbox;

-- name: demo_counts
SELECT (SELECT count(*) FROM sync_notification) AS notifications,
       (SELECT count(*) FROM sync_notification WHERE state IN ('pending', 'claimed')) AS pending,
       (SELECT count(*) FROM reservation) AS reservations;

-- name: lock_room_reservations
-- Every session already holds SQLite's one writer lock (BEGIN IMMEDIATE): nothing to add.
SELECT :mailbox AS mailbox;

-- name: record_reservation_change
-- Positional, in the order of pushsync.store.reservation_book.CHANGE_COLUMNS.
INSERT INTO reservation_change (changed_at, mailbox, uid, original_start, change)
VALUES (?, ?, ?, ?, ?);

-- name: reservation_changes
-- The changes after `after` (an id), oldest first: what a system following the table reads.
SELECT id, changed_at, mailbox, uid, original_start, change FROM reservation_change
WHERE id > :after ORDER BY id LIMIT :limit;

-- name: purge_reservation_changes
DELETE FROM reservation_change
WHERE id IN (
    SELECT id FROM reservation_change WHERE changed_at < :before ORDER BY id LIMIT :limit
);
