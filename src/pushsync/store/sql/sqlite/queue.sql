-- The notification table as a queue (src/pushsync/store/notification_queue.py). Parameters are :named; lists
-- arrive as JSON and are read with json_each. Every session is BEGIN IMMEDIATE, so a claim holds
-- the database's write lock from its SELECT to its UPDATE and two consumers never take one row.

-- name: claim_notifications
UPDATE sync_notification
SET state = 'claimed',
    attempts = attempts + 1,
    lease_owner = :owner,
    lease_expires_at = :lease_expires_at
WHERE id IN (
    SELECT id FROM sync_notification AS p
    WHERE state = 'pending' AND (available_at IS NULL OR available_at <= :now)
      -- a room's rows go to one consumer at a time: another's live lease on its subscription
      -- keeps them for that one (it reads the room once for all; two would read it twice)
      AND NOT EXISTS (
          SELECT 1 FROM sync_notification AS c
          WHERE c.state = 'claimed' AND c.subscription_id = p.subscription_id
            AND c.lease_owner <> :owner AND c.lease_expires_at > :now
      )
    ORDER BY id
    LIMIT :limit
)
RETURNING *,
    (SELECT s.mailbox FROM subscription AS s
     WHERE s.subscription_id = sync_notification.subscription_id) AS mailbox;

-- name: requeue_expired_leases
UPDATE sync_notification
SET state = 'pending',
    available_at = NULL,
    last_error = 'lease of ' || lease_owner || ' expired',
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE state = 'claimed' AND lease_expires_at <= :now AND attempts < :max_attempts;

-- name: fail_expired_leases
UPDATE sync_notification
SET state = 'failed',
    processed_at = :now,
    last_error = 'lease of ' || lease_owner || ' expired after the last attempt',
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE state = 'claimed' AND lease_expires_at <= :now AND attempts >= :max_attempts;

-- name: extend_leases
UPDATE sync_notification
SET lease_expires_at = :lease_expires_at
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'claimed' AND lease_owner = :owner;

-- name: complete_notifications
UPDATE sync_notification
SET state = 'done',
    processed_at = :now,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'claimed' AND lease_owner = :owner;

-- name: retry_notification
UPDATE sync_notification
SET state = 'pending',
    available_at = :available_at,
    last_error = :error,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = :id AND state = 'claimed' AND lease_owner = :owner;

-- name: give_up_notification
UPDATE sync_notification
SET state = 'failed',
    processed_at = :now,
    last_error = :error,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = :id AND state = 'claimed' AND lease_owner = :owner;

-- name: purge_processed
DELETE FROM sync_notification
WHERE id IN (
    SELECT id FROM sync_notification
    WHERE state = :state AND processed_at < :before
    LIMIT :limit
);

-- name: queue_counts
SELECT state, count(*) AS n FROM sync_notification GROUP BY state;

-- name: release_notifications
UPDATE sync_notification
SET state = 'pending',
    attempts = attempts - 1,
    available_at = :available_at,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'claimed' AND lease_owner = :owner;
