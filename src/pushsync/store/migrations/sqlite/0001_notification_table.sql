-- The notification table (public interface, docs/notification-table.md) and the subscription
-- table the receiver reads to answer Unsubscribe.
CREATE TABLE sync_notification (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at               TIMESTAMP NOT NULL,
    protocol                  TEXT NOT NULL CHECK (protocol IN ('ews', 'graph')),
    subscription_id           TEXT NOT NULL,
    event_type                TEXT NOT NULL,
    watermark                 TEXT,
    previous_watermark        TEXT,
    more_events               BOOLEAN,
    event_time                TIMESTAMP,
    item_id                   TEXT,
    item_change_key           TEXT,
    folder_id                 TEXT,
    folder_change_key         TEXT,
    parent_folder_id          TEXT,
    parent_folder_change_key  TEXT,
    old_item_id               TEXT,
    old_folder_id             TEXT,
    old_parent_folder_id      TEXT,
    unread_count              INTEGER,
    response_code             TEXT,
    resource                  TEXT,
    remote_addr               TEXT,
    -- digest of (protocol, subscription_id, watermark): the redelivery key, short to index
    event_key                 BLOB,
    -- processing state, owned by the consumers of the table
    state                     TEXT NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'claimed', 'done', 'failed')),
    attempts                  INTEGER NOT NULL DEFAULT 0,
    available_at              TIMESTAMP,
    lease_owner               TEXT,
    lease_expires_at          TIMESTAMP,
    last_error                TEXT,
    processed_at              TIMESTAMP
);

-- Redelivery of the same event adds nothing. Rows without a watermark (Graph, error
-- notifications) have no key and never conflict, so every one of those is kept.
CREATE UNIQUE INDEX sync_notification_event_key ON sync_notification (event_key);

CREATE INDEX sync_notification_pending
    ON sync_notification (available_at, id) WHERE state = 'pending';

CREATE TABLE subscription (
    subscription_id   TEXT PRIMARY KEY,
    protocol          TEXT NOT NULL DEFAULT 'ews' CHECK (protocol IN ('ews', 'graph')),
    mailbox           TEXT,
    state             TEXT NOT NULL DEFAULT 'active',
    last_watermark    TEXT,
    status_frequency  INTEGER,
    created_at        TIMESTAMP NOT NULL,
    last_event_at     TIMESTAMP,
    retired_at        TIMESTAMP,
    last_error        TEXT
);

CREATE INDEX subscription_mailbox ON subscription (mailbox);
