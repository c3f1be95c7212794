-- The current PostgreSQL schema in one piece: what every migration together must produce.
-- tests/integration/test_migrations.py compares a database created from this file with one
-- upgraded through all migrations, by catalog. A new migration updates this file too.

CREATE TABLE sync_notification (
    id                        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at               TIMESTAMPTZ NOT NULL,
    protocol                  TEXT NOT NULL CHECK (protocol IN ('ews', 'graph')),
    subscription_id           TEXT NOT NULL,
    event_type                TEXT NOT NULL,
    watermark                 TEXT,
    previous_watermark        TEXT,
    more_events               BOOLEAN,
    event_time                TIMESTAMPTZ,
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
    event_key                 BYTEA,
    state                     TEXT NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'claimed', 'done', 'failed')),
    attempts                  INTEGER NOT NULL DEFAULT 0,
    available_at              TIMESTAMPTZ,
    lease_owner               TEXT,
    lease_expires_at          TIMESTAMPTZ,
    last_error                TEXT,
    processed_at              TIMESTAMPTZ
);

CREATE UNIQUE INDEX sync_notification_event_key
    ON sync_notification (coalesce(event_time, '-infinity'::timestamptz), event_key);
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
    created_at        TIMESTAMPTZ NOT NULL,
    last_event_at     TIMESTAMPTZ,
    retired_at        TIMESTAMPTZ,
    last_error        TEXT,
    expires_at        TIMESTAMPTZ,
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
    last_synced_at   TIMESTAMPTZ,
    last_error       TEXT,
    last_error_at    TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    resync_generation INTEGER NOT NULL DEFAULT 0,
    paused_until     TIMESTAMPTZ,
    resync_lease_until TIMESTAMPTZ,
    display_name     TEXT,
    capacity         INTEGER,
    building         TEXT,
    floor_number     INTEGER,
    discovered_from  TEXT,
    missing_since    TIMESTAMPTZ,
    removed_at       TIMESTAMPTZ,
    protocol_override TEXT CHECK (protocol_override IN ('ews', 'graph')),
    poll_reason      TEXT,
    poll_detail      TEXT,
    poll_since       TIMESTAMPTZ,
    calendar_folder_id TEXT
);

CREATE INDEX room_resync_requested ON room (last_synced_at NULLS FIRST, mailbox) WHERE needs_resync;
CREATE INDEX room_last_synced ON room (last_synced_at NULLS FIRST, mailbox);

CREATE TABLE room_migration (
    mailbox       TEXT PRIMARY KEY,
    source        TEXT NOT NULL CHECK (source IN ('ews', 'graph')),
    target        TEXT NOT NULL CHECK (target IN ('ews', 'graph')),
    state         TEXT NOT NULL
                  CHECK (state IN ('requested', 'subscribed', 'resynced', 'retired')),
    requested_at  TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    last_error    TEXT
);

CREATE TABLE reservation (
    mailbox           TEXT NOT NULL,
    uid               TEXT NOT NULL,
    original_start    TIMESTAMPTZ,
    item_id           TEXT NOT NULL,
    series_master_id  TEXT,
    item_type         TEXT NOT NULL,
    subject           TEXT NOT NULL DEFAULT '',
    organizer         TEXT NOT NULL DEFAULT '',
    start_at          TIMESTAMPTZ NOT NULL,
    end_at            TIMESTAMPTZ NOT NULL,
    time_zone         TEXT,
    is_all_day        BOOLEAN NOT NULL DEFAULT FALSE,
    location          TEXT NOT NULL DEFAULT '',
    sensitivity       TEXT NOT NULL DEFAULT 'normal',
    response_state    TEXT NOT NULL,
    is_cancelled      BOOLEAN NOT NULL DEFAULT FALSE,
    change_key        TEXT,
    last_modified     TIMESTAMPTZ,
    last_synced_at    TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX reservation_key ON reservation (mailbox, uid, coalesce(original_start, '-infinity'::timestamptz));
CREATE INDEX reservation_item ON reservation (mailbox, item_id);
CREATE INDEX reservation_series ON reservation (mailbox, series_master_id);

CREATE TABLE reservation_change (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    changed_at      TIMESTAMPTZ NOT NULL,
    mailbox         TEXT NOT NULL,
    uid             TEXT NOT NULL,
    original_start  TIMESTAMPTZ,
    change          TEXT NOT NULL CHECK (change IN ('upsert', 'delete'))
);
CREATE INDEX reservation_change_at ON reservation_change (changed_at);

CREATE TABLE process_heartbeat (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('receiver', 'worker', 'manager')),
    protocol    TEXT CHECK (protocol IN ('ews', 'graph')),
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    last_beat   TIMESTAMPTZ NOT NULL,
    stopped_at  TIMESTAMPTZ
);
CREATE INDEX process_heartbeat_last_beat ON process_heartbeat (last_beat);

CREATE TABLE room_discovery (
    source      TEXT PRIMARY KEY,
    checked_at  TIMESTAMPTZ NOT NULL,
    listed      INTEGER NOT NULL,
    problem     TEXT
);

CREATE TABLE graph_write_budget (
    budget_key  TEXT PRIMARY KEY,
    held_until  DOUBLE PRECISION NOT NULL DEFAULT 0
);

CREATE TABLE graph_write_permit (
    permit_id   TEXT PRIMARY KEY,
    budget_key  TEXT NOT NULL REFERENCES graph_write_budget (budget_key),
    expires_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX graph_write_permit_expiry ON graph_write_permit (budget_key, expires_at);

CREATE TABLE fleet_sample (
    minute_at          TIMESTAMPTZ NOT NULL,  -- the start of the minute (UTC)
    process            TEXT NOT NULL,       -- host:pid of the worker that wrote it
    received           INTEGER NOT NULL DEFAULT 0,  -- notification rows that arrived (fleet)
    worked             INTEGER NOT NULL DEFAULT 0,  -- rows this worker worked off
    lag_p50_seconds    DOUBLE PRECISION,    -- received -> applied, of the rows it applied
    lag_p99_seconds    DOUBLE PRECISION,
    rooms_out_of_sync  INTEGER,             -- of the whole fleet, at the end of the minute
    calls              INTEGER NOT NULL DEFAULT 0,  -- requests to Exchange / Graph
    throttled          INTEGER NOT NULL DEFAULT 0,  -- back-offs a server asked for
    PRIMARY KEY (minute_at, process)
);

CREATE TABLE room_out_of_sync (
    mailbox  TEXT PRIMARY KEY,
    since    TIMESTAMPTZ NOT NULL,  -- the first sample that found the room with a problem
    kind     TEXT NOT NULL        -- that problem's kind (room_status.PROBLEM_KINDS)
);
