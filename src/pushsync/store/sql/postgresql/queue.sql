-- The notification table as a queue (src/pushsync/store/notification_queue.py). Parameters are %(named)s (psycopg).
-- Every statement that picks rows locks them with SKIP LOCKED, so concurrent consumers never
-- wait on each other's rows and never take the same row.

-- name: claim_notifications
UPDATE sync_notification AS n
SET state = 'claimed',
    attempts = n.attempts + 1,
    lease_owner = %(owner)s,
    lease_expires_at = %(lease_expires_at)s
WHERE n.id IN (
    SELECT id FROM sync_notification AS p
    WHERE state = 'pending' AND (available_at IS NULL OR available_at <= %(now)s)
      -- a room's rows go to one consumer at a time: another's live lease on its subscription
      -- keeps them for that one (it reads the room once for all; two would read it twice)
      AND NOT EXISTS (
          SELECT 1 FROM sync_notification AS c
          WHERE c.state = 'claimed' AND c.subscription_id = p.subscription_id
            AND c.lease_owner <> %(owner)s AND c.lease_expires_at > %(now)s
      )
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING n.*,
    (SELECT s.mailbox FROM subscription AS s WHERE s.subscription_id = n.subscription_id) AS mailbox;

-- name: requeue_expired_leases
UPDATE sync_notification
SET state = 'pending',
    available_at = NULL,
    last_error = 'lease of ' || lease_owner || ' expired',
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM sync_notification
    WHERE state = 'claimed' AND lease_expires_at <= %(now)s AND attempts < %(max_attempts)s
    FOR UPDATE SKIP LOCKED
);

-- name: fail_expired_leases
UPDATE sync_notification
SET state = 'failed',
    processed_at = %(now)s,
    last_error = 'lease of ' || lease_owner || ' expired after the last attempt',
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM sync_notification
    WHERE state = 'claimed' AND lease_expires_at <= %(now)s AND attempts >= %(max_attempts)s
    FOR UPDATE SKIP LOCKED
);

-- name: extend_leases
UPDATE sync_notification
SET lease_expires_at = %(lease_expires_at)s
WHERE id = ANY(%(ids)s) AND state = 'claimed' AND lease_owner = %(owner)s;

-- name: complete_notifications
UPDATE sync_notification
SET state = 'done',
    processed_at = %(now)s,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = ANY(%(ids)s) AND state = 'claimed' AND lease_owner = %(owner)s;

-- name: retry_notification
UPDATE sync_notification
SET state = 'pending',
    available_at = %(available_at)s,
    last_error = %(error)s,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s AND state = 'claimed' AND lease_owner = %(owner)s;

-- name: give_up_notification
UPDATE sync_notification
SET state = 'failed',
    processed_at = %(now)s,
    last_error = %(error)s,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s AND state = 'claimed' AND lease_owner = %(owner)s;

-- name: purge_processed
DELETE FROM sync_notification
WHERE id IN (
    SELECT id FROM sync_notification
    WHERE state = %(state)s AND processed_at < %(before)s
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
);

-- name: queue_counts
SELECT state, count(*) AS n FROM sync_notification GROUP BY state;

-- name: release_notifications
UPDATE sync_notification
SET state = 'pending',
    attempts = attempts - 1,
    available_at = %(available_at)s,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = ANY(%(ids)s) AND state = 'claimed' AND lease_owner = %(owner)s;
