-- The current SQLite schema in one piece: what every migration together must produce.
-- tests/integration/test_migrations.py compares a database created from this file with one
-- upgraded through all migrations, by catalog. A new migration updates this file too.

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
    event_key                 BLOB,
    state                     TEXT NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'claimed', 'done', 'failed')),
    attempts                  INTEGER NOT NULL DEFAULT 0,
    available_at              TIMESTAMP,
    lease_owner               TEXT,
    lease_expires_at          TIMESTAMP,
    last_error                TEXT,
    processed_at              TIMESTAMP
);

CREATE UNIQUE INDEX sync_notification_event_key
    ON sync_notification (coalesce(event_time, ''), event_key);
CREATE INDEX sync_notification_pending ON sync_notification (id) WHERE state = 'pending';
CREATE INDEX sync_notification_leased
    ON sync_notification (lease_expires_at) WHERE state = 'claimed';
CREATE INDEX sync_notification_claimed_subscription
    ON sync_notification (subscription_id) WHERE state = 'claimed';
CREATE INDEX sync_notification_processed
    ON sync_notification (processed_at) WHERE state IN ('done', 'failed');
CREATE INDEX sync_notification_failed ON sync_notification (processed_at) WHERE state = 'failed';

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
    last_error        TEXT,
    expires_at        TIMESTAMP,
    replaced_by       TEXT,
    start_watermark   TEXT
);

CREATE INDEX subscription_mailbox ON subscription (mailbox);
CREATE INDEX subscription_state ON subscription (state, mailbox);

CREATE TABLE room (
    mailbox          TEXT PRIMARY KEY,
    protocol         TEXT NOT NULL DEFAULT 'ews' CHECK (protocol IN ('ews', 'graph')),
    needs_resync     BOOLEAN NOT NULL DEFAULT TRUE,
    resync_reason    TEXT DEFAULT 'new room',
    sync_state       TEXT,
    last_synced_at   TIMESTAMP,
    last_error       TEXT,
    last_error_at    TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    resync_generation INTEGER NOT NULL DEFAULT 0,
    paused_until     TIMESTAMP,
    resync_lease_until TIMESTAMP,
    display_name     TEXT,
    capacity         INTEGER,
    building         TEXT,
    floor_number     INTEGER,
    discovered_from  TEXT,
    missing_since    TIMESTAMP,
    removed_at       TIMESTAMP,
    protocol_override TEXT CHECK (protocol_override IN ('ews', 'graph')),
    poll_reason      TEXT,
    poll_detail      TEXT,
    poll_since       TIMESTAMP,
    calendar_folder_id TEXT
);

CREATE INDEX room_resync_requested ON room (last_synced_at, mailbox) WHERE needs_resync;
CREATE INDEX room_last_synced ON room (last_synced_at, mailbox);

CREATE TABLE room_migration (
    mailbox       TEXT PRIMARY KEY,
    source        TEXT NOT NULL CHECK (source IN ('ews', 'graph')),
    target        TEXT NOT NULL CHECK (target IN ('ews', 'graph')),
    state         TEXT NOT NULL
                  CHECK (state IN ('requested', 'subscribed', 'resynced', 'retired')),
    requested_at  TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    last_error    TEXT
);

CREATE TABLE reservation (
    mailbox           TEXT NOT NULL,
    uid               TEXT NOT NULL,
    original_start    TIMESTAMP,
    item_id           TEXT NOT NULL,
    series_master_id  TEXT,
    item_type         TEXT NOT NULL,
    subject           TEXT NOT NULL DEFAULT '',
    organizer         TEXT NOT NULL DEFAULT '',
    start_at          TIMESTAMP NOT NULL,
    end_at            TIMESTAMP NOT NULL,
    time_zone         TEXT,
    is_all_day        BOOLEAN NOT NULL DEFAULT FALSE,
    location          TEXT NOT NULL DEFAULT '',
    sensitivity       TEXT NOT NULL DEFAULT 'normal',
    response_state    TEXT NOT NULL,
    is_cancelled      BOOLEAN NOT NULL DEFAULT FALSE,
    change_key        TEXT,
    last_modified     TIMESTAMP,
    last_synced_at    TIMESTAMP NOT NULL
);

CREATE UNIQUE INDEX reservation_key ON reservation (mailbox, uid, coalesce(original_start, ''));
CREATE INDEX reservation_item ON reservation (mailbox, item_id);
CREATE INDEX reservation_series ON reservation (mailbox, series_master_id);

CREATE TABLE reservation_change (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    changed_at      TIMESTAMP NOT NULL,
    mailbox         TEXT NOT NULL,
    uid             TEXT NOT NULL,
    original_start  TIMESTAMP,
    change          TEXT NOT NULL CHECK (change IN ('upsert', 'delete'))
);
CREATE INDEX reservation_change_at ON reservation_change (changed_at);

CREATE TABLE process_heartbeat (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('receiver', 'worker', 'manager')),
    protocol    TEXT CHECK (protocol IN ('ews', 'graph')),
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  TIMESTAMP NOT NULL,
    last_beat   TIMESTAMP NOT NULL,
    stopped_at  TIMESTAMP
);
CREATE INDEX process_heartbeat_last_beat ON process_heartbeat (last_beat);

CREATE TABLE room_discovery (
    source      TEXT PRIMARY KEY,
    checked_at  TIMESTAMP NOT NULL,
    listed      INTEGER NOT NULL,
    problem     TEXT
);

CREATE TABLE graph_write_budget (
    budget_key  TEXT PRIMARY KEY,
    held_until  REAL NOT NULL DEFAULT 0
);

CREATE TABLE graph_write_permit (
    permit_id   TEXT PRIMARY KEY,
    budget_key  TEXT NOT NULL REFERENCES graph_write_budget (budget_key),
    expires_at  REAL NOT NULL
);
CREATE INDEX graph_write_permit_expiry ON graph_write_permit (budget_key, expires_at);

CREATE TABLE fleet_sample (
    minute_at          TIMESTAMP NOT NULL,  -- the start of the minute (UTC)
    process            TEXT NOT NULL,       -- host:pid of the worker that wrote it
    received           INTEGER NOT NULL DEFAULT 0,  -- notification rows that arrived (fleet)
    worked             INTEGER NOT NULL DEFAULT 0,  -- rows this worker worked off
    lag_p50_seconds    REAL,                -- received -> applied, of the rows it applied
    lag_p99_seconds    REAL,
    rooms_out_of_sync  INTEGER,             -- of the whole fleet, at the end of the minute
    calls              INTEGER NOT NULL DEFAULT 0,  -- requests to Exchange / Graph
    throttled          INTEGER NOT NULL DEFAULT 0,  -- back-offs a server asked for
    PRIMARY KEY (minute_at, process)
);

CREATE TABLE room_out_of_sync (
    mailbox  TEXT PRIMARY KEY,
    since    TIMESTAMP NOT NULL,  -- the first sample that found the room with a problem
    kind     TEXT NOT NULL        -- that problem's kind (room_status.PROBLEM_KINDS)
);
