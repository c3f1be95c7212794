-- Rooms and their subscriptions (src/pushsync/store/subscriptions.py). Parameters are %(named)s (psycopg).

-- name: upsert_room
INSERT INTO room (mailbox, protocol, created_at) VALUES (%(mailbox)s, %(protocol)s, %(now)s)
ON CONFLICT (mailbox) DO UPDATE SET protocol = excluded.protocol;

-- name: list_rooms
SELECT * FROM room ORDER BY mailbox;

-- name: live_subscriptions
SELECT * FROM subscription WHERE state IN ('active', 'broken') ORDER BY mailbox, created_at;

-- name: insert_subscription
INSERT INTO subscription (
    subscription_id, protocol, mailbox, state, last_watermark, start_watermark,
    status_frequency, created_at, last_event_at, expires_at
) VALUES (
    %(subscription_id)s, %(protocol)s, %(mailbox)s, 'active', %(watermark)s, %(watermark)s,
    %(status_frequency)s, %(now)s,
    %(now)s, %(expires_at)s
);

-- name: retire_replaced_subscription
UPDATE subscription
SET state = 'retired', retired_at = %(now)s, replaced_by = %(replaced_by)s,
    last_error = COALESCE(%(reason)s, last_error)
WHERE subscription_id = %(subscription_id)s AND state <> 'retired';

-- name: subscription_heard
UPDATE subscription
SET last_event_at = %(at)s, last_watermark = COALESCE(%(watermark)s, last_watermark)
WHERE subscription_id = %(subscription_id)s;

-- name: subscription_broken
UPDATE subscription SET state = 'broken', last_error = %(error)s
WHERE subscription_id = %(subscription_id)s AND state = 'active';

-- name: subscription_gone
UPDATE subscription SET state = 'broken', last_error = %(error)s
WHERE subscription_id = %(subscription_id)s AND state IN ('active', 'broken');

-- name: subscription_by_id
SELECT * FROM subscription WHERE subscription_id = %(subscription_id)s;

-- name: subscriptions_by_ids
SELECT * FROM subscription WHERE subscription_id = ANY(%(ids)s);

-- name: request_resync
UPDATE room
SET needs_resync = TRUE, resync_reason = %(reason)s, resync_generation = resync_generation + 1
WHERE mailbox = %(mailbox)s;

-- name: room_resync_generation
SELECT resync_generation FROM room WHERE mailbox = %(mailbox)s;

-- name: room_error
UPDATE room SET last_error = %(error)s, last_error_at = %(now)s WHERE mailbox = %(mailbox)s;

-- name: subscription_overview
SELECT r.mailbox, r.protocol, r.needs_resync, r.resync_reason, r.last_synced_at,
       r.last_error, r.last_error_at, r.paused_until, s.subscription_id, s.state, s.created_at,
       s.last_event_at, s.status_frequency, s.expires_at, s.last_error AS subscription_error,
       r.display_name, r.capacity, r.building, r.floor_number, r.missing_since
FROM room r
LEFT JOIN subscription s ON s.mailbox = r.mailbox AND s.state IN ('active', 'broken')
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
WHERE coalesce(event_time, '-infinity'::timestamptz) = '-infinity' AND event_key = %(event_key)s
UNION ALL
SELECT 1 FROM sync_notification
WHERE coalesce(event_time, '-infinity'::timestamptz) BETWEEN %(since)s AND %(until)s
  AND event_key = %(event_key)s
UNION ALL
SELECT 1 FROM sync_notification WHERE event_key = %(event_key)s
LIMIT 1;

-- name: subscription_renewed
UPDATE subscription SET state = 'active', expires_at = %(expires_at)s, last_error = NULL
WHERE subscription_id = %(subscription_id)s AND state IN ('active', 'broken');

-- name: room_sync_state
SELECT sync_state FROM room WHERE mailbox = %(mailbox)s;

-- name: save_room_sync_state
UPDATE room SET sync_state = %(state)s WHERE mailbox = %(mailbox)s;

-- name: retire_other_protocols
UPDATE subscription
SET state = 'retired', retired_at = %(now)s, last_error = %(reason)s
WHERE mailbox = %(mailbox)s AND protocol <> %(protocol)s AND state IN ('active', 'broken');

-- name: pause_room
UPDATE room SET paused_until = %(until)s
WHERE mailbox = %(mailbox)s AND (paused_until IS NULL OR paused_until < %(until)s);

-- name: paused_rooms
SELECT mailbox, paused_until FROM room WHERE paused_until > %(now)s;

-- name: queue_by_room
-- Per room and state, the rows not yet done: how many, the oldest arrival, the last failure.
-- One SELECT per state, so that each reads its own partial index, never the whole table.
SELECT s.mailbox, n.state, count(*) AS row_count, min(n.received_at) AS oldest,
       max(n.processed_at) AS last_processed
FROM (
    SELECT subscription_id, state, received_at, processed_at
    FROM sync_notification WHERE state = 'pending'
    UNION ALL
    SELECT subscription_id, state, received_at, processed_at
    FROM sync_notification WHERE state = 'claimed'
    UNION ALL
    SELECT subscription_id, state, received_at, processed_at
    FROM sync_notification WHERE state = 'failed'
) AS n
JOIN subscription s ON s.subscription_id = n.subscription_id
GROUP BY s.mailbox, n.state;
