-- Named SQL for the status page's history (pushsync.store.fleet_samples): the worker's minute
-- samples and since when rooms are out of sync, and what the page of one room shows. Every read
-- is bounded: a range of the samples' primary key, or of the newest ids of a table.

-- name: fleet_sample_add
-- A worker flushing more often than once a minute adds to its row of the minute; the lags and
-- the count of rooms out of sync are the worst (latest) seen; greatest() skips NULLs.
INSERT INTO fleet_sample (minute_at, process, received, worked, lag_p50_seconds,
                          lag_p99_seconds, rooms_out_of_sync, calls, throttled)
VALUES (%(minute_at)s, %(process)s, %(received)s, %(worked)s, %(lag_p50_seconds)s, %(lag_p99_seconds)s,
        %(rooms_out_of_sync)s, %(calls)s, %(throttled)s)
ON CONFLICT (minute_at, process) DO UPDATE SET
    received = fleet_sample.received + excluded.received,
    worked = fleet_sample.worked + excluded.worked,
    lag_p50_seconds = greatest(fleet_sample.lag_p50_seconds, excluded.lag_p50_seconds),
    lag_p99_seconds = greatest(fleet_sample.lag_p99_seconds, excluded.lag_p99_seconds),
    rooms_out_of_sync = coalesce(excluded.rooms_out_of_sync, fleet_sample.rooms_out_of_sync),
    calls = fleet_sample.calls + excluded.calls,
    throttled = fleet_sample.throttled + excluded.throttled;

-- name: fleet_sample_purge
DELETE FROM fleet_sample WHERE minute_at < %(before)s;

-- name: fleet_history
-- One row per minute over the workers' rows: what each worker did adds up; what they all see
-- (rows arrived, rooms out of sync) and the lags are the largest reported. At most 1,440 minutes
-- times the workers, read through the primary key.
SELECT minute_at, max(received) AS received, sum(worked) AS worked,
       max(lag_p50_seconds) AS lag_p50_seconds, max(lag_p99_seconds) AS lag_p99_seconds,
       max(rooms_out_of_sync) AS rooms_out_of_sync, sum(calls) AS calls,
       sum(throttled) AS throttled
FROM fleet_sample WHERE minute_at >= %(since)s
GROUP BY minute_at ORDER BY minute_at;

-- name: notifications_after
-- Rows that arrived since the last sample: a range of the primary key.
SELECT count(*) AS arrived, max(id) AS top FROM sync_notification WHERE id > %(after)s;

-- name: notification_top
SELECT coalesce(max(id), 0) AS top FROM sync_notification;

-- name: rooms_out_of_sync
SELECT mailbox, since, kind FROM room_out_of_sync;

-- name: room_out_of_sync_begins
-- A room already out of sync keeps its `since` when its problem changes kind.
INSERT INTO room_out_of_sync (mailbox, since, kind) VALUES (%(mailbox)s, %(since)s, %(kind)s)
ON CONFLICT (mailbox) DO UPDATE SET kind = excluded.kind;

-- name: room_out_of_sync_ends
DELETE FROM room_out_of_sync WHERE mailbox = %(mailbox)s;

-- name: room_out_of_sync_one
SELECT since, kind FROM room_out_of_sync WHERE mailbox = %(mailbox)s;

-- name: room_subscription_history
SELECT subscription_id, protocol, state, created_at, expires_at, last_event_at, retired_at,
       replaced_by, last_error
FROM subscription WHERE mailbox = %(mailbox)s ORDER BY created_at DESC LIMIT %(limit)s;

-- name: room_recent_notifications
-- Among the newest rows of the table only (`after`: the newest id less a bound), so that a
-- quiet room's page does not read the whole table.
SELECT n.id, n.received_at, n.event_type, n.state, n.attempts, n.processed_at, n.last_error,
       n.subscription_id
FROM sync_notification n
WHERE n.id > %(after)s
  AND n.subscription_id IN (SELECT subscription_id FROM subscription WHERE mailbox = %(mailbox)s)
ORDER BY n.id DESC LIMIT %(limit)s;

-- name: room_failed_notifications
-- Failed rows are few and indexed (sync_notification_failed).
SELECT n.id, n.received_at, n.event_type, n.state, n.attempts, n.processed_at, n.last_error,
       n.subscription_id
FROM sync_notification n
WHERE n.state = 'failed' AND n.processed_at IS NOT NULL
  AND n.subscription_id IN (SELECT subscription_id FROM subscription WHERE mailbox = %(mailbox)s)
ORDER BY n.processed_at DESC LIMIT %(limit)s;

-- name: reservation_change_top
SELECT coalesce(max(id), 0) AS top FROM reservation_change;

-- name: room_recent_changes
SELECT changed_at, uid, original_start, change FROM reservation_change
WHERE id > %(after)s AND mailbox = %(mailbox)s ORDER BY id DESC LIMIT %(limit)s;
