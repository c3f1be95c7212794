-- Named SQL for PostgreSQL. Each statement starts with "-- name: <name>"; parameters are %(named)s (psycopg).

-- name: migrations_lock
SELECT pg_advisory_xact_lock(7238001);

-- name: schema_version_table
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL
);

-- name: applied_versions
SELECT version FROM schema_version ORDER BY version;

-- name: record_version
INSERT INTO schema_version (version, name, applied_at) VALUES (%(version)s, %(name)s, %(applied_at)s);

-- name: insert_notification
-- One execution per group-commit batch: the rows travel as one array per column, in the order
-- of pushsync.store.inbox.INSERT_COLUMNS (a test holds this list to it), in binary format, and
-- unnest turns them back into rows in order (PostgreSQLSession.execute_many). executemany ran
-- one INSERT per row on the server, which cost the shared server more than the receivers
-- (docs/benchmarks.md). A key twice in one batch is still one row: DO NOTHING checks the rows
-- this statement inserted before.
INSERT INTO sync_notification (
    received_at, protocol, subscription_id, event_type, watermark, previous_watermark,
    more_events, event_time, item_id, item_change_key, folder_id, folder_change_key,
    parent_folder_id, parent_folder_change_key, old_item_id, old_folder_id,
    old_parent_folder_id, unread_count, response_code, resource, remote_addr, event_key
)
SELECT * FROM unnest(
    %b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
    %b::boolean[], %b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[],
    %b::text[], %b::text[], %b::text[], %b::text[],
    %b::text[], %b::integer[], %b::text[], %b::text[], %b::text[], %b::bytea[]
) ON CONFLICT DO NOTHING;

-- name: subscription_states
-- The ids go as a binary array: the text form quoted every id through a regex on the client,
-- once per group commit on the receiver's event loop.
SELECT subscription_id, state FROM subscription
WHERE subscription_id = ANY(%(subscription_ids)b);

-- name: retire_subscription
INSERT INTO subscription (subscription_id, protocol, state, created_at, retired_at)
VALUES (%(subscription_id)s, %(protocol)s, 'retired', %(now)s, %(now)s)
ON CONFLICT (subscription_id) DO UPDATE SET state = 'retired', retired_at = %(now)s;

-- name: count_notifications
SELECT count(*) AS n FROM sync_notification;
