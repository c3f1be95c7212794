-- Named SQL for the rooms' verdicts (pushsync.admin.room_status): which room is out of sync, and
-- the first reason why, decided here once for every reader (status page, /rooms, /metrics,
-- `pushsync status`, `subscriptions list`, the room page, the worker's samples). Python only words
-- the verdict this statement chose.

-- name: room_verdicts
-- One statement, so that the rules exist once: the judged rooms (`judged`), then a page of them
-- (filtered by :state, after the key (:after_rank, :after_mailbox), at most :limit) and, when
-- :totals, one row per (kind, protocol, polling reason, moving) with its count (part 0).
-- The queue is read per state through its partial indexes; the live subscription shown is the
-- one of the room's protocol, then "active" before "broken" (a room moving has two).
-- :ews_down / :graph_down: no live worker for that protocol (every room of it is "no worker").
WITH queue AS (
    SELECT s.mailbox,
           sum(CASE WHEN n.state <> 'failed' THEN 1 ELSE 0 END) AS pending,
           min(CASE WHEN n.state <> 'failed' THEN n.received_at END) AS oldest_pending,
           sum(CASE WHEN n.state = 'failed' THEN 1 ELSE 0 END) AS failed_rows,
           max(CASE WHEN n.state = 'failed' THEN n.processed_at END) AS last_failed
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
    GROUP BY s.mailbox
),
live AS (
    -- a room the directory stopped listing and pushsync let go of is no longer kept in sync
    SELECT * FROM room r WHERE r.removed_at IS NULL AND (:mailbox IS NULL OR r.mailbox = :mailbox)
),
facts AS (
    -- only what the rules read: a page's rows get their other columns at the end
    SELECT r.mailbox, r.protocol, r.needs_resync, r.paused_until, s.subscription_id, s.state,
           m.state IS NOT NULL AS moving,
           CASE WHEN coalesce(r.poll_reason, '') <> '' AND s.state IS NULL
                THEN r.poll_reason END AS polled_for,
           coalesce(q.pending, 0) AS pending, q.oldest_pending,
           -- failed rows older than the room's last resync are healed: it repaired them
           CASE WHEN q.last_failed IS NOT NULL AND r.last_synced_at IS NOT NULL
                     AND q.last_failed < r.last_synced_at THEN 0
                ELSE coalesce(q.failed_rows, 0) END AS failed,
           -- an error counts for RECENT_ERROR (:error_since = now - RECENT_ERROR)
           coalesce(r.last_error, '') <> ''
               AND (r.last_error_at IS NULL OR r.last_error_at > :error_since) AS fresh_error,
           -- subscriptions.UNREACHABLE: the installation's calls fail, not the room's
           substr(r.last_error, 1, 13) = 'unreachable: ' AS unreachable,
           -- 15: subscriptions.DEFAULT_STATUS_FREQUENCY
           (julianday(:now) - julianday(coalesce(s.last_event_at, s.created_at))) * 1440.0
               > 2 * coalesce(nullif(s.status_frequency, 0), 15) AS unheard
    FROM live r
    -- the subscription shown, found per room through subscription_mailbox: a join with a
    -- window over all subscriptions was planned as a scan of it per room, 50,000 x 50,000
    -- (the status page did not answer within 120 s at 50,000 rooms, bench/fleet)
    LEFT JOIN subscription s ON s.subscription_id = coalesce(
        (SELECT x.subscription_id FROM subscription x
         WHERE x.mailbox = r.mailbox AND x.protocol = r.protocol
           AND x.state IN ('active', 'broken')
         ORDER BY x.state LIMIT 1),
        (SELECT x.subscription_id FROM subscription x
         WHERE x.mailbox = r.mailbox AND x.state IN ('active', 'broken')
         ORDER BY x.state LIMIT 1)
    )
    LEFT JOIN room_migration m ON m.mailbox = r.mailbox AND m.state <> 'retired'
    LEFT JOIN queue q ON q.mailbox = r.mailbox
),
-- The first problem, in the order of room_status.PROBLEM_KINDS (its rank there, 1-based);
-- 13: in sync.
judged AS (
    SELECT f.mailbox, f.protocol, f.subscription_id, f.moving, f.polled_for, f.pending,
           f.oldest_pending, f.failed,
           CASE
               WHEN (f.protocol = 'ews' AND :ews_down) OR (f.protocol = 'graph' AND :graph_down)
                   THEN 1  -- no worker
               WHEN f.polled_for IS NOT NULL AND f.fresh_error AND NOT f.unreachable
                   THEN 2  -- polling failed: the reads fail too
               WHEN f.polled_for IS NOT NULL AND NOT f.fresh_error THEN 3  -- polling
               WHEN f.state IS NULL THEN 4  -- no subscription
               WHEN f.state = 'broken' THEN 5  -- subscription broken
               WHEN f.protocol = 'ews' AND f.unheard THEN 6  -- silent
               WHEN f.paused_until > :now THEN 9  -- throttled: before "behind", it is why rows wait
               WHEN f.failed > 0 THEN 7  -- notifications failed
               WHEN f.oldest_pending < :behind_before THEN 8  -- behind
               WHEN f.fresh_error AND f.unreachable THEN 10  -- unreachable
               WHEN f.fresh_error THEN 11  -- error
               WHEN f.needs_resync THEN 12  -- resync waiting
               ELSE 13
           END AS rank
    FROM facts f
),
page AS (
    SELECT * FROM judged
    WHERE (:state IS NULL
           OR (:state = 'problem' AND rank < 13)
           OR (:state = 'moving' AND moving)
           OR rank = :state_rank)
      AND (rank > :after_rank OR (rank = :after_rank AND mailbox > :after_mailbox))
    ORDER BY rank, mailbox
    LIMIT :limit
)
SELECT 1 AS part, 1 AS room_count, p.rank AS rank, p.pending, p.oldest_pending, p.failed,
       p.polled_for IS NOT NULL AS polled,
       r.mailbox AS mailbox, r.protocol, r.needs_resync, r.resync_reason, r.last_synced_at,
       r.last_error, r.last_error_at, r.paused_until, r.poll_reason, r.poll_detail, r.poll_since,
       s.subscription_id, s.state, s.created_at, s.last_event_at, s.status_frequency,
       s.expires_at, s.last_error AS subscription_error,
       m.target AS migration_target, m.state AS migration_state,
       m.last_error AS migration_error,
       r.display_name, r.capacity, r.building, r.floor_number, r.missing_since
FROM page p
JOIN room r ON r.mailbox = p.mailbox
-- through the primary key: a page's rows, never every subscription again
LEFT JOIN subscription s ON s.subscription_id = p.subscription_id
LEFT JOIN room_migration m ON m.mailbox = p.mailbox AND m.state <> 'retired'
UNION ALL
-- the totals: columns a room row does not need stay empty
SELECT 0, count(*), rank, sum(pending), min(oldest_pending), sum(failed), NULL,
       NULL, protocol, NULL, NULL, NULL, NULL, NULL, NULL, polled_for, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, CASE WHEN moving THEN 'moving' END, NULL,
       NULL, NULL, NULL, NULL, NULL
FROM judged
WHERE :totals
GROUP BY rank, protocol, polled_for, moving
ORDER BY part DESC, rank, mailbox;
