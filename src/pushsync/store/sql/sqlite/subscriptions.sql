-- Rooms and their subscriptions (src/pushsync/store/subscriptions.py). Parameters are :named.

-- name: upsert_room
INSERT INTO room (mailbox, protocol, created_at) VALUES (:mailbox, :protocol, :now)
-- A room moved by `pushsync rooms migrate` (protocol_override) keeps the protocol the move gave
-- it, whatever the settings say.
ON CONFLICT (mailbox) DO UPDATE
SET protocol = CASE WHEN room.protocol_override IS NULL THEN excluded.protocol ELSE room.protocol END;

-- name: list_rooms
SELECT * FROM room ORDER BY mailbox;

-- name: live_subscriptions
SELECT * FROM subscription WHERE state IN ('active', 'broken') ORDER BY mailbox, created_at;

-- name: insert_subscription
-- A subscription id we already hold is one Graph handed back on a 409 (the same resource and
-- URL) after we had retired it: Graph still has it, and we renewed it, so it lives again.
INSERT INTO subscription (
    subscription_id, protocol, mailbox, state, last_watermark, start_watermark,
    status_frequency, created_at, last_event_at, expires_at
) VALUES (
    :subscription_id, :protocol, :mailbox, 'active', :watermark, :watermark,
    :status_frequency, :now,
    :now, :expires_at
)
ON CONFLICT (subscription_id) DO UPDATE
SET state = 'active', mailbox = excluded.mailbox, retired_at = NULL, replaced_by = NULL,
    last_error = NULL, last_event_at = excluded.last_event_at, expires_at = excluded.expires_at;

-- name: retire_replaced_subscription
UPDATE subscription
SET state = 'retired', retired_at = :now, replaced_by = :replaced_by,
    last_error = COALESCE(:reason, last_error)
WHERE subscription_id = :subscription_id AND state <> 'retired';

-- name: subscription_heard
UPDATE subscription
SET last_event_at = :at, last_watermark = COALESCE(:watermark, last_watermark)
WHERE subscription_id = :subscription_id;

-- name: subscription_broken
UPDATE subscription SET state = 'broken', last_error = :error
WHERE subscription_id = :subscription_id AND state = 'active';

-- name: subscription_gone
UPDATE subscription SET state = 'broken', last_error = :error
WHERE subscription_id = :subscription_id AND state IN ('active', 'broken');

-- name: subscription_by_id
SELECT * FROM subscription WHERE subscription_id = :subscription_id;

-- name: subscriptions_by_ids
SELECT * FROM subscription WHERE subscription_id IN (SELECT value FROM json_each(:ids));

-- name: request_resync
UPDATE room
SET needs_resync = TRUE, resync_reason = :reason, resync_generation = resync_generation + 1
WHERE mailbox = :mailbox;

-- name: room_resync_generation
SELECT resync_generation FROM room WHERE mailbox = :mailbox;

-- name: room_error
UPDATE room SET last_error = :error, last_error_at = :now WHERE mailbox = :mailbox;

-- name: subscription_overview
SELECT r.mailbox, r.protocol, r.needs_resync, r.resync_reason, r.last_synced_at,
       r.last_error, r.last_error_at, r.paused_until, r.poll_reason, r.poll_detail, r.poll_since,
       s.subscription_id, s.state, s.created_at,
       s.last_event_at, s.status_frequency, s.expires_at, s.last_error AS subscription_error,
       m.target AS migration_target, m.state AS migration_state,
       m.last_error AS migration_error,
       r.display_name, r.capacity, r.building, r.floor_number, r.missing_since
FROM room r
LEFT JOIN subscription s ON s.mailbox = r.mailbox AND s.state IN ('active', 'broken')
LEFT JOIN room_migration m ON m.mailbox = r.mailbox AND m.state <> 'retired'
-- a room the directory stopped listing and pushsync let go of is no longer kept in sync
WHERE r.removed_at IS NULL
-- A room moving between protocols may have two live subscriptions: the one of its protocol
-- comes first (the status shows that one), then "active" before "broken".
ORDER BY r.mailbox, (s.protocol = r.protocol) DESC, s.state;

-- name: watermark_seen
-- The redelivery index is led by the event's time (migration 0008), so the key is looked for
-- first where it is cheap: among rows without a time (StatusEvent, one seek), then among the
-- keys of the minutes before the event that names it (`since` .. `until`, read through; the
-- event just before it in its subscription's stream is almost always there), and only then in
-- the whole index: that scan runs when the watermark is truly missing, before a resync that
-- costs far more.
SELECT 1 AS seen FROM sync_notification
WHERE coalesce(event_time, '') = '' AND event_key = :event_key
UNION ALL
SELECT 1 FROM sync_notification
WHERE coalesce(event_time, '') BETWEEN :since AND :until AND event_key = :event_key
UNION ALL
SELECT 1 FROM sync_notification WHERE event_key = :event_key
LIMIT 1;

-- name: subscription_renewed
UPDATE subscription SET state = 'active', expires_at = :expires_at, last_error = NULL
WHERE subscription_id = :subscription_id AND state IN ('active', 'broken');

-- name: room_sync_state
SELECT sync_state FROM room WHERE mailbox = :mailbox;

-- name: save_room_sync_state
UPDATE room SET sync_state = :state WHERE mailbox = :mailbox;

-- name: room_calendar_folder_id
SELECT calendar_folder_id FROM room WHERE mailbox = :mailbox;

-- name: save_room_calendar_folder_id
UPDATE room SET calendar_folder_id = :folder_id WHERE mailbox = :mailbox;

-- name: retire_other_protocols
UPDATE subscription
SET state = 'retired', retired_at = :now, last_error = :reason
WHERE mailbox = :mailbox AND protocol <> :protocol AND state IN ('active', 'broken')
  -- a room being migrated keeps its old subscription until it is resynced over the new one
  AND NOT EXISTS (
      SELECT 1 FROM room_migration m
      WHERE m.mailbox = :mailbox AND m.state IN ('requested', 'subscribed'));

-- name: pause_room
UPDATE room SET paused_until = :until
WHERE mailbox = :mailbox AND (paused_until IS NULL OR paused_until < :until);

-- name: paused_rooms
SELECT mailbox, paused_until FROM room WHERE paused_until > :now;

-- name: room_subscribed
-- A subscription was created for the room: polling (if it was polled) ends. A resync it awaits
-- gets a new generation, so that a read begun before the subscription existed (what changed
-- between that read and the Subscribe was never pushed) does not clear the request.
UPDATE room
SET poll_reason = NULL, poll_detail = NULL, poll_since = NULL,
    resync_generation = resync_generation + CASE WHEN needs_resync THEN 1 ELSE 0 END
WHERE mailbox = :mailbox;

-- name: start_polling
-- Polling begins with a read at once (a resync request); expressions read the row as it was.
UPDATE room
SET poll_reason = :reason, poll_detail = :detail, poll_since = COALESCE(poll_since, :now),
    needs_resync = needs_resync OR poll_since IS NULL,
    resync_reason = CASE WHEN poll_since IS NULL THEN 'polling begins' ELSE resync_reason END,
    resync_generation = resync_generation + CASE WHEN poll_since IS NULL THEN 1 ELSE 0 END
WHERE mailbox = :mailbox;

-- name: rooms_moved_off
-- Rooms `pushsync rooms migrate` moved to another protocol than this one.
SELECT mailbox FROM room WHERE protocol_override IS NOT NULL AND protocol_override <> :protocol;

-- name: claim_polls
-- Rooms polled because their protocol refused a subscription (poll_reason), due once their last
-- read is older than polled_before, leased like a resync; not one that has a live subscription
-- of its protocol, nor one inside a back-off or leased (being read, or its last read failed:
-- the lease spaces out the retries).
UPDATE room SET resync_lease_until = :lease_until
WHERE mailbox IN (
    SELECT mailbox FROM room
    WHERE poll_reason IS NOT NULL
      AND protocol IN (SELECT value FROM json_each(:protocols))
      AND (last_synced_at IS NULL OR last_synced_at < :polled_before)
      AND NOT EXISTS (
          SELECT 1 FROM subscription s
          WHERE s.mailbox = room.mailbox AND s.protocol = room.protocol
            AND s.state IN ('active', 'broken'))
      AND (resync_lease_until IS NULL OR resync_lease_until <= :now)
      AND (paused_until IS NULL OR paused_until <= :now)
    ORDER BY last_synced_at NULLS FIRST, mailbox
    LIMIT :limit
)
RETURNING mailbox, protocol, resync_generation;

-- name: last_received
-- The latest row the receiver stored for each of these subscriptions since `since`, processed
-- or not: the manager's proof that Exchange still reaches us when the worker, busy, has not
-- noted it yet (last_event_at). Read through the queue's partial indexes, never the whole
-- table: the rows waiting (pending, claimed: the backlog) and those processed since `since` (a
-- row is processed after it is received, so its processed_at is at least its received_at).
SELECT subscription_id, max(received_at) AS received_at
FROM (
    SELECT subscription_id, received_at FROM sync_notification
    WHERE state = 'pending' AND received_at >= :since AND subscription_id IN (SELECT value FROM json_each(:ids))
    UNION ALL
    SELECT subscription_id, received_at FROM sync_notification
    WHERE state = 'claimed' AND received_at >= :since AND subscription_id IN (SELECT value FROM json_each(:ids))
    UNION ALL
    SELECT subscription_id, received_at FROM sync_notification
    WHERE state IN ('done', 'failed') AND processed_at >= :since AND received_at >= :since
      AND subscription_id IN (SELECT value FROM json_each(:ids))
) AS n
GROUP BY subscription_id;

-- name: retired_since
-- Whether any subscription of this protocol was retired since `since`: the Graph manager lists
-- Graph's subscriptions (to DELETE the retired ones Graph still holds) only then.
SELECT count(*) AS retired FROM subscription
WHERE protocol = :protocol AND state = 'retired' AND retired_at >= :since;
