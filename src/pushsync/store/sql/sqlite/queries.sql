-- Named SQL for SQLite. Each statement starts with "-- name: <name>"; parameters are :named.

-- name: migrations_lock
SELECT 1;

-- name: schema_version_table
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  TIMESTAMP NOT NULL
);

-- name: applied_versions
SELECT version FROM schema_version ORDER BY version;

-- name: record_version
INSERT INTO schema_version (version, name, applied_at) VALUES (:version, :name, :applied_at);

-- name: insert_notification
-- Positional parameters, in the order of pushsync.store.inbox.INSERT_COLUMNS (a test holds
-- this list to it): binding a dozen parameters by name is a cost on every request.
INSERT INTO sync_notification (
    received_at, protocol, subscription_id, event_type, watermark, previous_watermark,
    more_events, event_time, item_id, item_change_key, folder_id, folder_change_key,
    parent_folder_id, parent_folder_change_key, old_item_id, old_folder_id,
    old_parent_folder_id, unread_count, response_code, resource, remote_addr, event_key
) VALUES (
    ?, ?, ?, ?, ?, ?,
    ?, ?, ?, ?, ?, ?,
    ?, ?, ?, ?,
    ?, ?, ?, ?, ?, ?
) ON CONFLICT DO NOTHING;

-- name: subscription_states
SELECT subscription_id, state FROM subscription
WHERE subscription_id IN (SELECT value FROM json_each(:subscription_ids));

-- name: retire_subscription
INSERT INTO subscription (subscription_id, protocol, state, created_at, retired_at)
VALUES (:subscription_id, :protocol, 'retired', :now, :now)
ON CONFLICT (subscription_id) DO UPDATE SET state = 'retired', retired_at = :now;

-- name: count_notifications
SELECT count(*) AS n FROM sync_notification;
